package lora_test

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"

	"handbook/backend"
	"handbook/lora"
	"handbook/model"
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
