package lora_test

import (
	"context"
	"fmt"
	"math"
	"os"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"handbook/backend"
	"handbook/data"
	"handbook/lora"
	"handbook/model"
	"handbook/sft"
	"handbook/train"
)

// Example attaches a rank-8 adapter to every linear layer of a small random model. B starts at
// zero, so the model computes the same logits as before until the adapter is trained. Trainable
// values: r·(in+out) per module, 4096 per layer here (q, o: 8·64; k, v: 8·48; gate, up, down: 8·96).
func Example() {
	cfg, err := model.ParseConfig([]byte(`{"model_type":"llama","vocab_size":64,"hidden_size":32,
		"intermediate_size":64,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
		"tie_word_embeddings":false}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	be, _, err := backend.New()
	if err != nil {
		fmt.Println(err)
		return
	}
	w, _ := model.RandomWeights(cfg, dtypes.Float32, 1)
	m, _ := model.New(be, cfg, w)
	defer m.Finalize()

	a, err := lora.Attach(m, lora.Config{R: 8, Alpha: 16, TargetModules: []string{lora.AllLinear}}, 42)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("adapted modules:", len(a.Modules), "(lm_head excluded)")
	fmt.Println("scale:", a.Scale())
	fmt.Println("trainable:", a.TrainableParameters(), "values")
	fmt.Println("base frozen:", !a.Trainable("model.layers.0.self_attn.q_proj.weight"))
	_, err = lora.Attach(m, lora.Config{R: 0, Alpha: 16, TargetModules: []string{"q_proj"}}, 1)
	fmt.Println(err)
	// Output:
	// adapted modules: 14 (lm_head excluded)
	// scale: 2
	// trainable: 8192 values
	// base frozen: true
	// lora: r must be positive, got 0 (Config.R; PEFT's default is 8, TRL's lora_r 16)
}

// Train a LoRA adapter with SFT for a few steps (the Adapter field is all the wiring: the base
// stays frozen and the output directory holds the PEFT adapter), then fold it into a plain model
// that computes the same logits (PEFT's merge_and_unload).
func ExampleAdapter_Merge() {
	ctx := context.Background()
	be, _, err := backend.New()
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := model.Load(be, "../testdata/models/llama_gqa", model.LoadOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Finalize()
	a, err := lora.Attach(m, lora.Config{R: 4, Alpha: 8}, 42) // PEFT's default targets: q_proj, v_proj
	if err != nil {
		fmt.Println(err)
		return
	}
	out, err := os.MkdirTemp("", "lora-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(out)
	ids := []int32{1, 10, 11, 12, 20, 21, 22, 2}
	in := model.Inputs{IDs: [][]int32{ids}}
	before, err := m.Logits(in) // B starts at zero: the base model's logits
	if err != nil {
		fmt.Println(err)
		return
	}
	trainer := &sft.Trainer{Model: m, Adapter: a, TrainSet: []data.Sample{{InputIDs: ids, Labels: ids}},
		Config: sft.Config{Args: train.Args{OutputDir: out, MaxSteps: 5, LearningRate: 1e-2}}}
	if _, err := trainer.Train(ctx); err != nil {
		fmt.Println(err)
		return
	}
	merged, err := a.Merge()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer merged.Finalize()
	adapted, err := m.Logits(in)
	if err != nil {
		fmt.Println(err)
		return
	}
	plain, err := merged.Logits(in)
	if err != nil {
		fmt.Println(err)
		return
	}
	maxDiff := func(p, q *tensors.Tensor) float64 {
		x, y := tensors.MustCopyFlatData[float32](p), tensors.MustCopyFlatData[float32](q)
		var worst float64
		for i := range x {
			worst = math.Max(worst, math.Abs(float64(x[i]-y[i])))
		}
		return worst
	}
	fmt.Println("adapted modules:", len(a.Modules))
	fmt.Println("training moved the logits:", maxDiff(before, adapted) > 1e-2)
	fmt.Println("merged logits equal the adapted ones:", maxDiff(adapted, plain) < 1e-4)
	// Output:
	// adapted modules: 4
	// training moved the logits: true
	// merged logits equal the adapted ones: true
}
