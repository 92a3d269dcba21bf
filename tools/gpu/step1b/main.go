// Command step1b times optimizer steps of a ~1.1B-parameter Llama (TinyLlama-1.1B's shape: hidden
// 2048, intermediate 5632, 22 layers, 32 heads, 4 KV heads, vocab 32000) with train.Engine on the
// backend GOMLX_BACKEND names, as the seed trains: bf16 weights (float32 masters), bf16 mixed
// precision (Decoder.Autocast) and flash_attention_2 (the backend's fused attention where it has
// one). It prints tokens/s and the model FLOPs utilization (MFU: 6·Ψ·tokens/s over the device's
// peak; the attention FLOPs, 12·L·h·s per token, are added as PaLM's appendix B does). Weights are
// random: the point is speed, not loss.
//
//	GOMLX_BACKEND=xla:/path/to/xla_cuda_plugin.so step1b --peak_tflops 989
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"handbook/backend"
	"handbook/model"
	"handbook/train"
)

const config = `{"model_type":"llama","vocab_size":32000,"hidden_size":2048,"intermediate_size":5632,
"num_hidden_layers":22,"num_attention_heads":32,"num_key_value_heads":4,"max_position_embeddings":2048,
"tie_word_embeddings":false,"rms_norm_eps":1e-5,"rope_theta":10000}`

func main() {
	batch := flag.Int("batch", 4, "rows per step")
	seq := flag.Int("seq", 2048, "tokens per row")
	steps := flag.Int("steps", 6, "timed optimizer steps (after one compiling step)")
	bf16 := flag.Bool("bf16", true, "bfloat16 weights and bf16 mixed precision (else float32)")
	attn := flag.String("attn_implementation", "flash_attention_2", "eager, sdpa or flash_attention_2")
	checkpointing := flag.Bool("gradient_checkpointing", false, "recompute layer activations in the backward pass")
	cfgJSON := flag.String("config_json", config, "model config.json text (the default is the 1.1B Llama)")
	peak := flag.Float64("peak_tflops", 989, "device peak in TFLOP/s for MFU (H100 SXM dense bf16: 989; TF32: 495; H200 the same)")
	flag.Parse()
	if err := run(*cfgJSON, *batch, *seq, *steps, *bf16, *checkpointing, *attn, *peak); err != nil {
		fmt.Fprintln(os.Stderr, "step1b:", err)
		os.Exit(1)
	}
}

func run(config string, batch, seq, steps int, bf16, checkpointing bool, attn string, peakTFLOPs float64) error {
	b, sel, err := backend.New()
	if err != nil {
		return err
	}
	fmt.Println(sel)
	cfg, err := model.ParseConfig([]byte(config))
	if err != nil {
		return err
	}
	dtype := dtypes.Float32
	if bf16 {
		dtype = dtypes.BFloat16
	}
	w, err := model.RandomWeights(cfg, dtype, 1)
	if err != nil {
		return err
	}
	var psi int64
	for _, t := range w {
		psi += int64(t.Shape().Size())
	}
	m, err := model.New(b, cfg, w)
	if err != nil {
		return err
	}
	m.Decoder.GradientCheckpointing = checkpointing
	if bf16 {
		m.Decoder.Autocast = dtypes.BFloat16
	}
	if m.Decoder.Attention, err = model.ParseAttentionImplementation(attn); err != nil {
		return err
	}
	m.Decoder.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]int32, batch*seq)
	for i := range ids {
		ids[i] = int32(rng.IntN(cfg.VocabSize))
	}
	t := tensors.FromFlatDataAndDimensions(ids, batch, seq)
	var start time.Time
	e := &train.Engine{Model: m, Objective: train.CausalLM{}, Args: train.Args{LearningRate: 1e-5, MaxSteps: steps + 1, MaxGradNorm: 1}}
	e.Progress = func(step, _ int, loss float64) {
		if step == 1 {
			start = time.Now() // the first step compiles
		}
		fmt.Printf("step %d loss %.4f (%s)\n", step, loss, time.Since(start).Round(time.Millisecond))
	}
	if _, err := e.Train(context.Background(), one{map[string]*tensors.Tensor{"input_ids": t, "labels": t}}, nil); err != nil {
		return err
	}
	elapsed := time.Since(start).Seconds()
	tokensPerSec := float64(batch*seq*steps) / elapsed
	flopsPerToken := 6*float64(psi) + 12*float64(cfg.NumHiddenLayers*cfg.HiddenSize*seq)
	mfu := tokensPerSec * flopsPerToken / (peakTFLOPs * 1e12)
	out, _ := json.Marshal(map[string]any{"params": psi, "dtype": dtype.String(), "batch": batch, "seq": seq,
		"steps": steps, "seconds_per_step": elapsed / float64(steps), "tokens_per_s": tokensPerSec, "mfu": mfu, "peak_tflops": peakTFLOPs})
	fmt.Println(string(out))
	return nil
}

type one struct{ batch map[string]*tensors.Tensor }

func (o one) Len() int                                           { return 1 }
func (o one) Batch(int, int) (map[string]*tensors.Tensor, error) { return o.batch, nil }
