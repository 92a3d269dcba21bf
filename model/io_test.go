package model

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func copyFixture(t *testing.T, name string) string {
	t.Helper()
	dst := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		data, err := os.ReadFile(filepath.Join(fixtureDir, name, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, f), data, 0o644))
	}
	return dst
}

func TestSaveLoadIsBitIdentical(t *testing.T) {
	b := testBackend(t)
	for _, tc := range []struct {
		name     string
		maxShard int64
		files    string
	}{
		{"single file", 0, "model.safetensors"},
		{"sharded", 100_000, "model-0000?-of-0000?.safetensors"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Load(b, filepath.Join(fixtureDir, "qwen2_bias"), LoadOptions{})
			require.NoError(t, err)
			out := t.TempDir()
			require.NoError(t, m.Save(out, SaveOptions{MaxShardSize: tc.maxShard}))
			for _, f := range []string{"config.json", "generation_config.json"} {
				assert.FileExists(t, filepath.Join(out, f))
			}
			files, err := filepath.Glob(filepath.Join(out, tc.files))
			require.NoError(t, err)
			if tc.maxShard > 0 {
				assert.Greater(t, len(files), 1, "several shards")
				assert.FileExists(t, filepath.Join(out, "model.safetensors.index.json"))
			} else {
				assert.Len(t, files, 1)
			}
			back, err := Load(b, out, LoadOptions{})
			require.NoError(t, err)
			assert.Equal(t, m.Config.ParamSpecs(), back.Config.ParamSpecs())
			for _, name := range m.Weights.Names() {
				want, err := tensors.CopyFlatData[float32](m.Weights[name])
				require.NoError(t, err)
				got, err := tensors.CopyFlatData[float32](back.Weights[name])
				require.NoError(t, err)
				assert.Equal(t, want, got, name)
			}
		})
	}
}

func TestSaveBFloat16AndRandomInit(t *testing.T) {
	b := testBackend(t)
	cfg, err := LoadConfig(filepath.Join(fixtureDir, "gemma", "config.json"))
	require.NoError(t, err)
	w, err := RandomWeights(cfg, dtypes.BFloat16, 7)
	require.NoError(t, err)
	m, err := New(b, cfg, w)
	require.NoError(t, err)
	out := t.TempDir()
	require.NoError(t, m.Save(out, SaveOptions{}))
	back, err := Load(b, out, LoadOptions{DType: dtypes.BFloat16})
	require.NoError(t, err)
	assert.Equal(t, dtypes.BFloat16, back.DType())
	saved, err := LoadConfig(out)
	require.NoError(t, err)
	assert.Equal(t, "bfloat16", saved.TorchDType)
	assert.True(t, saved.TieWordEmbeddings)
	// Gemma norms start at zero (it scales by 1+w); linear weights have the configured spread.
	norm, err := Float32Values(back.Weights["model.norm.weight"])
	require.NoError(t, err)
	assert.Equal(t, make([]float32, len(norm)), norm)
	emb, err := Float32Values(back.Weights["model.embed_tokens.weight"])
	require.NoError(t, err)
	var sq float64
	for _, v := range emb[cfg.HiddenSize:] {
		sq += float64(v) * float64(v)
	}
	std := sq / float64(len(emb)-cfg.HiddenSize)
	assert.InDelta(t, cfg.InitializerRange*cfg.InitializerRange, std, 0.2*cfg.InitializerRange*cfg.InitializerRange)
	assert.Equal(t, make([]float32, cfg.HiddenSize), emb[:cfg.HiddenSize], "pad row (pad_token_id 0) is zero")
	// bf16 logits stay close to the f32 run of the same weights.
	f32, err := Load(b, out, LoadOptions{})
	require.NoError(t, err)
	in := Inputs{IDs: [][]int32{{1, 5, 9, 33, 2}}}
	lb, err := back.Logits(in)
	require.NoError(t, err)
	lf, err := f32.Logits(in)
	require.NoError(t, err)
	vb, _ := tensors.CopyFlatData[float32](lb)
	vf, _ := tensors.CopyFlatData[float32](lf)
	assert.InDeltaSlice(t, vf, vb, 0.05)
}

func TestBadCheckpointsAreErrors(t *testing.T) {
	b := testBackend(t)
	corrupt := map[string]func(t *testing.T, dir string){
		"truncated file": func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			data, _ := os.ReadFile(p)
			require.NoError(t, os.WriteFile(p, data[:len(data)/2], 0o644))
		},
		"header claims more bytes than the file": func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			data, _ := os.ReadFile(p)
			binary.LittleEndian.PutUint64(data, uint64(len(data))*2)
			require.NoError(t, os.WriteFile(p, data, 0o644))
		},
		"wrong shape": func(t *testing.T, dir string) {
			cfg, _ := os.ReadFile(filepath.Join(dir, "config.json"))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"),
				[]byte(strings.Replace(string(cfg), `"intermediate_size": 96`, `"intermediate_size": 80`, 1)), 0o644))
		},
		"missing tensor": func(t *testing.T, dir string) {
			cfg, _ := os.ReadFile(filepath.Join(dir, "config.json"))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"),
				[]byte(strings.Replace(string(cfg), `"num_hidden_layers": 2`, `"num_hidden_layers": 3`, 1)), 0o644))
		},
		"missing file": func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "model.safetensors")))
		},
	}
	wantInError := map[string]string{
		"truncated file": "model.safetensors", "header claims more bytes than the file": "model.safetensors",
		"wrong shape": "mlp.down_proj.weight", "missing tensor": "model.layers.2.",
		"missing file": "model.safetensors",
	}
	for name, mutate := range corrupt {
		t.Run(name, func(t *testing.T) {
			dir := copyFixture(t, "llama_gqa")
			mutate(t, dir)
			_, err := Load(b, dir, LoadOptions{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), wantInError[name])
		})
	}
}

// TestInitZeroDTypeIsFloat32: Init's zero dtype is the documented float32, and its weights are
// RandomWeights' for the seed.
func TestInitZeroDTypeIsFloat32(t *testing.T) {
	b := testBackend(t)
	dir := filepath.Join(fixtureDir, "llama_gqa")
	m, err := Init(b, dir, dtypes.InvalidDType, 7)
	require.NoError(t, err)
	assert.Equal(t, dtypes.Float32, m.DType())
	w, err := RandomWeights(m.Config, dtypes.Float32, 7)
	require.NoError(t, err)
	name := "model.layers.0.self_attn.q_proj.weight"
	want, err := Float32Values(w[name])
	require.NoError(t, err)
	got, err := Float32Values(m.Weights[name])
	require.NoError(t, err)
	assert.Equal(t, want, got)
}
