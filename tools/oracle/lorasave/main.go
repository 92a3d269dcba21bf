// Command lorasave trains a small LoRA adapter with the Go code for tools/oracle/peft_check_go.py:
// by default rsLoRA on q/k/o/gate projections of testdata/models/llama_gqa, 8 AdamW steps of the
// causal LM objective on seeded random tokens (so B is far from zero), saved in PEFT's layout
// under OUT, with the Go logits of fixed input ids (adapter on, and merged) in
// OUT/go_reference.safetensors. -base names another fixture; -all_linear adapts every linear
// layer (and, on a mixture-of-experts model, the router and experts) with r=4, alpha=8.
//
//	go run ./tools/oracle/lorasave lora/testdata/go_adapter
//	go run ./tools/oracle/lorasave -base testdata/models/mixtral_moe -all_linear lora/testdata/go_adapter_mixtral
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/core/tensors"

	"handbook/backend"
	"handbook/lora"
	"handbook/model"
	"handbook/safetensors"
	"handbook/train"
)

func main() {
	base := flag.String("base", "testdata/models/llama_gqa", "base model fixture")
	allLinear := flag.Bool("all_linear", false, "target all-linear (r=4, alpha=8) instead of rsLoRA on q/k/o/gate_proj")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: lorasave [-base DIR] [-all_linear] OUT")
		os.Exit(2)
	}
	if err := run(*base, *allLinear, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "lorasave:", err)
		os.Exit(1)
	}
}

type batches []map[string]*tensors.Tensor

func (b batches) Len() int { return len(b) }

func (b batches) Batch(_, i int) (map[string]*tensors.Tensor, error) { return b[i], nil }

func run(base string, allLinear bool, out string) error {
	be, _, err := backend.New()
	if err != nil {
		return err
	}
	m, err := model.Load(be, base, model.LoadOptions{})
	if err != nil {
		return err
	}
	cfg := lora.Config{R: 4, Alpha: 16, UseRSLoRA: true, TargetModules: []string{"q_proj", "k_proj", "o_proj", "gate_proj"},
		BaseModel: base}
	if allLinear {
		cfg = lora.Config{R: 4, Alpha: 8, TargetModules: []string{lora.AllLinear}, BaseModel: base}
	}
	a, err := lora.Attach(m, cfg, 11)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(5, 6))
	random := func(rows, cols int) *tensors.Tensor {
		ids := make([]int32, rows*cols)
		for i := range ids {
			ids[i] = int32(3 + rng.IntN(m.Config.VocabSize-3))
		}
		return tensors.FromFlatDataAndDimensions(ids, rows, cols)
	}
	var data batches
	for i := 0; i < 2; i++ {
		t := random(2, 16)
		data = append(data, map[string]*tensors.Tensor{"input_ids": t, "labels": t})
	}
	e := &train.Engine{Model: m, Objective: train.CausalLM{}, Adapter: a,
		Args: train.Args{LearningRate: 2e-2, MaxSteps: 8, LRSchedulerType: "constant"}}
	if _, err := e.Train(context.Background(), data, nil); err != nil {
		return err
	}
	if err := a.Save(out); err != nil {
		return err
	}
	ids := random(2, 12)
	rows, err := idsRows(ids)
	if err != nil {
		return err
	}
	logits, err := m.Logits(model.Inputs{IDs: rows})
	if err != nil {
		return err
	}
	merged, err := a.Merge()
	if err != nil {
		return err
	}
	mergedLogits, err := merged.Logits(model.Inputs{IDs: rows})
	if err != nil {
		return err
	}
	idVals, _ := tensors.CopyFlatData[int32](ids)
	ids64 := make([]byte, 0, 8*len(idVals))
	for _, v := range idVals {
		u := uint64(int64(v))
		for k := 0; k < 8; k++ {
			ids64 = append(ids64, byte(u>>(8*k)))
		}
	}
	lv, _ := tensors.CopyFlatData[float32](logits)
	mv, _ := tensors.CopyFlatData[float32](mergedLogits)
	dims := logits.Shape().Dimensions
	return safetensors.Save(filepath.Join(out, "go_reference.safetensors"), []safetensors.Source{
		safetensors.RawSource("input_ids", safetensors.I64, []int{2, 12}, ids64),
		safetensors.Float32Source("logits", dims, lv),
		safetensors.Float32Source("merged_logits", dims, mv),
	}, nil)
}

func idsRows(t *tensors.Tensor) ([][]int32, error) {
	flat, err := tensors.CopyFlatData[int32](t)
	if err != nil {
		return nil, err
	}
	cols := t.Shape().Dim(1)
	var rows [][]int32
	for i := 0; i < len(flat); i += cols {
		rows = append(rows, flat[i:i+cols])
	}
	return rows, nil
}
