// Command gosave writes checkpoints with the Go code for tools/oracle/check_go_saved.py: for each
// fixture under testdata/models it draws new random weights for the fixture's config (so nothing is
// copied from the fixture), saves them (f32 single file, f32 sharded, bf16) under OUT, and records
// the Go logits of the fixture's input_ids in OUT/<dir>/reference.json.
//
//	go run ./tools/oracle/gosave OUT
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"handbook/backend"
	"handbook/model"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gosave OUT")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "gosave:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	b, _, err := backend.New()
	if err != nil {
		return err
	}
	fixtures, err := filepath.Glob("testdata/models/*/config.json")
	if err != nil {
		return err
	}
	variants := []struct {
		suffix string
		opts   model.SaveOptions
		dtype  dtypes.DType
	}{
		{"", model.SaveOptions{}, dtypes.Float32},
		{"_sharded", model.SaveOptions{MaxShardSize: 60_000}, dtypes.Float32},
		{"_bf16", model.SaveOptions{DType: dtypes.BFloat16}, dtypes.BFloat16},
	}
	for i, cfgPath := range fixtures {
		dir := filepath.Dir(cfgPath)
		cfg, err := model.LoadConfig(cfgPath)
		if err != nil {
			return err
		}
		var ref struct {
			InputIDs [][]int32 `json:"input_ids"`
		}
		data, err := os.ReadFile(filepath.Join(dir, "reference.json"))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, &ref); err != nil {
			return err
		}
		for _, v := range variants {
			w, err := model.RandomWeights(cfg, v.dtype, uint64(100+i))
			if err != nil {
				return err
			}
			m, err := model.New(b, cfg, w)
			if err != nil {
				return err
			}
			target := filepath.Join(out, filepath.Base(dir)+v.suffix)
			if err := m.Save(target, v.opts); err != nil {
				return err
			}
			logits, err := m.Logits(model.Inputs{IDs: ref.InputIDs})
			if err != nil {
				return err
			}
			dims := logits.Shape().Dimensions
			flat, err := tensors.CopyFlatData[float32](logits)
			if err != nil {
				return err
			}
			nested := make([][][]float32, dims[0])
			for bi := range nested {
				nested[bi] = make([][]float32, dims[1])
				for s := range nested[bi] {
					off := (bi*dims[1] + s) * dims[2]
					nested[bi][s] = flat[off : off+dims[2]]
				}
			}
			loss, _, err := m.Loss(model.Inputs{IDs: ref.InputIDs})
			if err != nil {
				return err
			}
			refOut, err := json.Marshal(map[string]any{"input_ids": ref.InputIDs, "logits": nested, "loss": loss})
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(target, "reference.json"), refOut, 0o644); err != nil {
				return err
			}
			m.Finalize()
		}
	}
	return nil
}
