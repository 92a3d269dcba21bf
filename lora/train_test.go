package lora

import (
	"bytes"
	"context"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/model"
	"handbook/safetensors"
	"handbook/train"
)

// fixedBatches serves the same few batches every epoch.
type fixedBatches []map[string]*tensors.Tensor

func (f fixedBatches) Len() int { return len(f) }

func (f fixedBatches) Batch(_, i int) (map[string]*tensors.Tensor, error) { return f[i], nil }

func randomBatches(vocab, n, batch, seq int) fixedBatches {
	rng := rand.New(rand.NewPCG(3, 4))
	var out fixedBatches
	for i := 0; i < n; i++ {
		ids := make([]int32, batch*seq)
		for j := range ids {
			ids[j] = int32(3 + rng.IntN(vocab-3))
		}
		t := tensors.FromFlatDataAndDimensions(ids, batch, seq)
		out = append(out, map[string]*tensors.Tensor{"input_ids": t, "labels": t})
	}
	return out
}

// snapshot copies every weight's raw bytes.
func snapshot(t *testing.T, w model.Weights) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for n, tn := range w {
		tn.ConstBytes(func(b []byte) { out[n] = bytes.Clone(b) })
	}
	return out
}

// TestTrainOnlyAdapter trains a LoRA (and a QLoRA) adapter with train.Engine and the causal LM
// objective: base weights stay bit for bit, the optimizer state holds only adapter-sized tensors,
// the loss decreases, and checkpoints hold the adapter in PEFT's layout.
func TestTrainOnlyAdapter(t *testing.T) {
	be := testBackend(t)
	for _, tc := range []struct {
		name      string
		quantized bool
		dropout   float64
	}{{"lora", false, 0}, {"qlora", true, 0}, {"lora_dropout", false, 0.1}} {
		quantized := tc.quantized
		t.Run(tc.name, func(t *testing.T) {
			m := loadBase(t, be, "llama_gqa")
			if quantized {
				require.NoError(t, QuantizeBase(m, QuantizeOptions{DoubleQuant: true}))
			}
			a, err := Attach(m, Config{R: 4, Alpha: 8, Dropout: tc.dropout, TargetModules: []string{AllLinear}}, 7)
			require.NoError(t, err)
			before := snapshot(t, m.Weights)
			out := t.TempDir()
			e := &train.Engine{Model: m, Objective: train.CausalLM{}, Adapter: a,
				Args: train.Args{OutputDir: out, LearningRate: 5e-3, MaxSteps: 12, SaveSteps: 12, LoggingSteps: 1,
					LRSchedulerType: "constant", Seed: 1}}
			res, err := e.Train(context.Background(), randomBatches(m.Config.VocabSize, 2, 2, 16), nil)
			require.NoError(t, err)

			after := snapshot(t, m.Weights)
			changed := 0
			for n, b := range before {
				if a.Trainable(n) {
					if !bytes.Equal(b, after[n]) {
						changed++
					}
					continue
				}
				assert.True(t, bytes.Equal(b, after[n]), "frozen weight %s changed", n)
			}
			assert.Equal(t, 2*len(a.Modules), changed, "every A and B trains")

			hist := res.State.LogHistory
			require.GreaterOrEqual(t, len(hist), 2)
			t.Logf("loss %.4f → %.4f over %d steps, %d trainable values", hist[0]["loss"], hist[len(hist)-1]["loss"], len(hist), a.TrainableParameters())
			assert.Less(t, hist[len(hist)-1]["loss"], hist[0]["loss"], "loss decreases")

			ckpt := filepath.Join(out, "checkpoint-12")
			for _, f := range []string{ConfigFile, WeightsFile} {
				assert.FileExists(t, filepath.Join(ckpt, f))
			}
			assert.NoFileExists(t, filepath.Join(ckpt, "model.safetensors"))
			opt, err := safetensors.Open(filepath.Join(ckpt, train.OptimizerFile))
			require.NoError(t, err)
			defer opt.Close()
			adapterValues := 0
			for _, n := range a.weightNames() {
				adapterValues += m.Weights[n].Shape().Size()
			}
			stateValues := 0
			for _, info := range opt.Tensors() {
				weight := info.Name[strings.Index(info.Name, "/")+1:]
				assert.True(t, isAdapterWeight(weight), "optimizer state for %s", info.Name)
				assert.Equal(t, m.Weights[weight].Shape().Dimensions, info.Shape, info.Name)
				stateValues += int(info.NumElements())
			}
			assert.Equal(t, 2*adapterValues, stateValues, "AdamW keeps two moments per adapter value only")

			// The checkpoint resumes into a fresh adapter on a fresh base.
			m2 := loadBase(t, be, "llama_gqa")
			if quantized {
				require.NoError(t, QuantizeBase(m2, QuantizeOptions{DoubleQuant: true}))
			}
			a2, err := Attach(m2, Config{R: 4, Alpha: 8, TargetModules: []string{AllLinear}}, 99)
			require.NoError(t, err)
			e2 := &train.Engine{Model: m2, Objective: train.CausalLM{}, Adapter: a2,
				Args: e.Args}
			require.NoError(t, e2.Resume(ckpt))
			for _, n := range a.weightNames() {
				assert.Equal(t, after[n], snapshot(t, model.Weights{n: m2.Weights[n]})[n], n)
			}
		})
	}
}
