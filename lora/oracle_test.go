package lora

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/backend"
	"handbook/model"
	"handbook/safetensors"
)

// modelsDir holds the tiny transformers models of tools/oracle/make_models.py.
const modelsDir = "../testdata/models"

// peftCases are the adapters tools/oracle/peft_golden.py made with PEFT, by fixture base.
var peftCases = map[string]string{
	"qwen2_list":       "qwen2_bias",
	"llama_rslora":     "llama_gqa",
	"llama_regex_save": "llama_gqa",
	"starcoder2_all":   "starcoder2_bias",
	"mixtral_all":      "mixtral_moe",
	"smollm3_all":      "smollm3_nope",
}

func testBackend(t testing.TB) compute.Backend {
	t.Helper()
	b, _, err := backend.New()
	require.NoError(t, err)
	t.Cleanup(b.Finalize)
	return b
}

// reference reads a case's reference.safetensors as float32 values (input_ids as int32).
type reference struct {
	ids    [][]int32
	values map[string][]float32
	dims   map[string][]int
}

func readReference(t *testing.T, path string) reference {
	t.Helper()
	f, err := safetensors.Open(path)
	require.NoError(t, err)
	defer f.Close()
	r := reference{values: map[string][]float32{}, dims: map[string][]int{}}
	for _, n := range f.Names() {
		tn, err := f.Tensor(n)
		require.NoError(t, err)
		if n == "input_ids" {
			ids, err := tn.Int64s()
			require.NoError(t, err)
			rows, cols := tn.Shape[0], tn.Shape[1]
			for b := 0; b < rows; b++ {
				row := make([]int32, cols)
				for s := range row {
					row[s] = int32(ids[b*cols+s])
				}
				r.ids = append(r.ids, row)
			}
			continue
		}
		r.values[n], err = tn.Float32s()
		require.NoError(t, err)
		r.dims[n] = tn.Shape
	}
	return r
}

// assertClose checks max|Δ| ≤ rel·max|want|.
func assertClose(t *testing.T, want, got []float32, rel float64, what string) {
	t.Helper()
	require.Len(t, got, len(want), what)
	var maxAbs, maxDiff float64
	for i, w := range want {
		maxAbs = math.Max(maxAbs, math.Abs(float64(w)))
		maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-w)))
	}
	assert.LessOrEqual(t, maxDiff, rel*maxAbs, "%s: max|Δ| %g vs max|want| %g", what, maxDiff, maxAbs)
}

func logits(t *testing.T, m *model.Model, ids [][]int32) []float32 {
	t.Helper()
	out, err := m.Logits(model.Inputs{IDs: ids})
	require.NoError(t, err)
	flat, err := tensors.CopyFlatData[float32](out)
	require.NoError(t, err)
	return flat
}

func loadBase(t *testing.T, be compute.Backend, name string) *model.Model {
	t.Helper()
	m, err := model.Load(be, filepath.Join(modelsDir, name), model.LoadOptions{})
	require.NoError(t, err)
	t.Cleanup(m.Finalize)
	return m
}

// TestPEFTAdapterLogits loads adapters PEFT wrote and compares logits with PEFT's, with the adapter
// on and disabled (BaseDecoder).
func TestPEFTAdapterLogits(t *testing.T) {
	be := testBackend(t)
	for name, base := range peftCases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", "peft_"+name)
			ref := readReference(t, filepath.Join(dir, "reference.safetensors"))
			m := loadBase(t, be, base)
			a, err := Load(m, dir)
			require.NoError(t, err)
			assertClose(t, ref.values["logits"], logits(t, m, ref.ids), 1e-4, "adapter logits")

			baseOnly, err := model.New(be, m.Config, m.Weights)
			require.NoError(t, err)
			defer baseOnly.Finalize()
			baseOnly.Decoder = a.BaseDecoder()
			if len(a.Saved) == 0 { // modules_to_save keep their trained values when disabled (documented)
				assertClose(t, ref.values["base_logits"], logits(t, baseOnly, ref.ids), 1e-4, "disabled adapter logits")
			}
		})
	}
}

// TestMergeMatchesPEFT folds each adapter into its base and compares with merge_and_unload.
func TestMergeMatchesPEFT(t *testing.T) {
	be := testBackend(t)
	for name, base := range peftCases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", "peft_"+name)
			ref := readReference(t, filepath.Join(dir, "reference.safetensors"))
			m := loadBase(t, be, base)
			a, err := Load(m, dir)
			require.NoError(t, err)
			merged, err := a.MergedWeights()
			require.NoError(t, err)
			n := 0
			for key, want := range ref.values {
				wName, ok := strings.CutPrefix(key, "merged.")
				if !ok {
					continue
				}
				n++
				got, err := model.Float32Values(merged[wName])
				require.NoError(t, err)
				var maxDiff float64
				for i := range want {
					maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
				}
				assert.LessOrEqual(t, maxDiff, 1e-6, "%s", wName)
			}
			require.NotZero(t, n)
			for wName := range merged {
				assert.False(t, isAdapterWeight(wName), "merged weights keep %s", wName)
			}
			// The merged model computes the adapter's logits without it.
			mm, err := a.Merge()
			require.NoError(t, err)
			defer mm.Finalize()
			assertClose(t, ref.values["logits"], logits(t, mm, ref.ids), 1e-4, "merged model logits")
			// And a saved merged checkpoint loads back as a plain model.
			out := t.TempDir()
			require.NoError(t, mm.Save(out, model.SaveOptions{}))
			back, err := model.Load(be, out, model.LoadOptions{})
			require.NoError(t, err)
			defer back.Finalize()
			assertClose(t, ref.values["logits"], logits(t, back, ref.ids), 1e-4, "reloaded merged logits")
		})
	}
}

// TestSaveLoadRoundTrip writes an adapter in PEFT's layout and reads it back bit for bit.
func TestSaveLoadRoundTrip(t *testing.T) {
	be := testBackend(t)
	m := loadBase(t, be, "llama_gqa")
	a, err := Load(m, filepath.Join("testdata", "peft_llama_regex_save"))
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, a.Save(dir))
	f, err := safetensors.Open(filepath.Join(dir, WeightsFile))
	require.NoError(t, err)
	defer f.Close()
	want, err := safetensors.Open(filepath.Join("testdata", "peft_llama_regex_save", WeightsFile))
	require.NoError(t, err)
	defer want.Close()
	assert.Equal(t, want.Names(), f.Names())
	for _, n := range want.Names() {
		wt, _ := want.Tensor(n)
		gt, _ := f.Tensor(n)
		assert.Equal(t, wt.Shape, gt.Shape, n)
		assert.Equal(t, wt.Data, gt.Data, n)
	}
	cfg, err := ReadConfig(dir)
	require.NoError(t, err)
	assert.Equal(t, 3, cfg.R)
	assert.Equal(t, []string{"lm_head"}, cfg.ModulesToSave)
	assert.NotEmpty(t, cfg.TargetRegex)
}

// TestDefaultTargetModules: a Config without target modules adapts PEFT's default modules for the
// model type (q_proj and v_proj for Llama).
func TestDefaultTargetModules(t *testing.T) {
	m := loadBase(t, testBackend(t), "llama_gqa")
	a, err := Attach(m, Config{R: 4, Alpha: 8}, 1)
	require.NoError(t, err)
	want := []string{}
	for l := range m.Config.NumHiddenLayers {
		want = append(want, fmt.Sprintf("model.layers.%d.self_attn.q_proj", l), fmt.Sprintf("model.layers.%d.self_attn.v_proj", l))
	}
	sort.Strings(want)
	assert.Equal(t, want, a.Modules)
	assert.Equal(t, 2.0, a.Scale())
}

func TestBadInput(t *testing.T) {
	be := testBackend(t)
	tests := []struct {
		name    string
		cfg     Config
		wantErr []string
	}{
		{"zero rank", Config{R: 0, Alpha: 8, TargetModules: []string{"q_proj"}}, []string{"r must be positive"}},
		{"negative rank", Config{R: -2, Alpha: 8, TargetModules: []string{"q_proj"}}, []string{"r must be positive"}},
		{"zero alpha", Config{R: 8, TargetModules: []string{"q_proj"}}, []string{"lora_alpha must be positive, got 0 (Config.Alpha)", "trains nothing"}},
		{"no match", Config{R: 4, Alpha: 8, TargetModules: []string{"query_key_value"}},
			[]string{"match no linear module", "model.layers.0.self_attn.q_proj", "lm_head"}},
		{"regex no match", Config{R: 4, Alpha: 8, TargetRegex: `.*\.attn\.c_attn`}, []string{"match no linear module"}},
		{"bias", Config{R: 4, Alpha: 8, TargetModules: []string{"q_proj"}, Bias: "all"}, []string{"bias"}},
		{"dropout", Config{R: 4, Alpha: 8, TargetModules: []string{"q_proj"}, Dropout: 1}, []string{"lora_dropout"}},
		{"modules_to_save", Config{R: 4, Alpha: 8, TargetModules: []string{"q_proj"}, ModulesToSave: []string{"score"}}, []string{"score"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := loadBase(t, be, "llama_gqa")
			_, err := Attach(m, tc.cfg, 1)
			require.Error(t, err)
			for _, s := range tc.wantErr {
				assert.Contains(t, err.Error(), s)
			}
		})
	}
	t.Run("base shape mismatch", func(t *testing.T) {
		// qwen2_list targets q_proj/v_proj/down_proj of qwen2_bias; llama_gqa has other
		// shapes for some of them.
		m := loadBase(t, be, "llama_tied")
		_, err := Load(m, filepath.Join("testdata", "peft_qwen2_list"))
		if err == nil {
			m = loadBase(t, be, "gemma")
			_, err = Load(m, filepath.Join("testdata", "peft_qwen2_list"))
		}
		require.Error(t, err)
		assert.Contains(t, err.Error(), "base_model.model.model.layers.")
		assert.Contains(t, err.Error(), "shape")
	})
	t.Run("unsupported PEFT feature", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":["q_proj"],"use_dora":true}`), 0o644))
		_, err := ReadConfig(dir)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "use_dora")
	})
}

// goAdapters are the adapters tools/oracle/lorasave trained and saved (each checked with PEFT by
// tools/oracle/peft_check_go.py), by base fixture.
var goAdapters = map[string]string{
	"go_adapter":            "llama_gqa",
	"go_adapter_starcoder2": "starcoder2_bias",
	"go_adapter_mixtral":    "mixtral_moe",
	"go_adapter_smollm3":    "smollm3_nope",
}

// TestGoAdapterFixture reloads the adapters tools/oracle/lorasave trained and saved and
// reproduces the Go logits recorded with them, adapter on and merged.
func TestGoAdapterFixture(t *testing.T) {
	be := testBackend(t)
	for name, base := range goAdapters {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", name)
			ref := readReference(t, filepath.Join(dir, "go_reference.safetensors"))
			m := loadBase(t, be, base)
			a, err := Load(m, dir)
			require.NoError(t, err)
			assertClose(t, ref.values["logits"], logits(t, m, ref.ids), 1e-5, "adapter logits")
			mm, err := a.Merge()
			require.NoError(t, err)
			defer mm.Finalize()
			assertClose(t, ref.values["merged_logits"], logits(t, mm, ref.ids), 1e-5, "merged logits")
		})
	}
}

// TestAllLinearSelectsWhatPEFTSelects attaches an all-linear adapter to each family and compares
// the tensors it would save with those of the adapter PEFT made with target_modules="all-linear"
// on the same base: the same modules (and, on Mixtral, the router and experts with gate_up_proj
// at twice the rank), in the same shapes.
func TestAllLinearSelectsWhatPEFTSelects(t *testing.T) {
	be := testBackend(t)
	for _, name := range []string{"starcoder2_all", "mixtral_all", "smollm3_all"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", "peft_"+name)
			peftCfg, err := ReadConfig(dir)
			require.NoError(t, err)
			m := loadBase(t, be, peftCases[name])
			a, err := Attach(m, Config{R: peftCfg.R, Alpha: peftCfg.Alpha, TargetModules: []string{AllLinear}}, 1)
			require.NoError(t, err)
			want, err := safetensors.Open(filepath.Join(dir, WeightsFile))
			require.NoError(t, err)
			defer want.Close()
			got := map[string][]int{}
			for _, n := range a.weightNames() {
				got[a.peftName(n)] = m.Weights[n].Shape().Dimensions
			}
			require.Len(t, got, len(want.Names()))
			for _, n := range want.Names() {
				wt, err := want.Tensor(n)
				require.NoError(t, err)
				assert.Equal(t, wt.Shape, got[n], n)
			}
		})
	}
}

// TestMoEAdapterRules: PEFT's rules for the router and experts of a Mixtral model.
func TestMoEAdapterRules(t *testing.T) {
	be := testBackend(t)
	m := loadBase(t, be, "mixtral_moe")
	_, err := Attach(m, Config{R: 4, Alpha: 8, Dropout: 0.05, TargetModules: []string{AllLinear}}, 1)
	require.Error(t, err, "ParamWrapper refuses dropout")
	assert.Contains(t, err.Error(), "lora_dropout 0.05")
	_, err = Attach(m, Config{R: 4, Alpha: 8, TargetModules: []string{"q_proj", "w1"}}, 1)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "w1 without w3")

	a, err := Attach(m, Config{R: 4, Alpha: 8, TargetModules: []string{"w1", "w3", "gate"}}, 1)
	require.NoError(t, err)
	assert.Empty(t, a.Modules)
	assert.Equal(t, []string{"model.layers.0.block_sparse_moe.experts.gate_up_proj", "model.layers.0.block_sparse_moe.gate.weight",
		"model.layers.1.block_sparse_moe.experts.gate_up_proj", "model.layers.1.block_sparse_moe.gate.weight"}, a.Parameters)
	assert.Equal(t, []int{8 * 4, 32}, m.Weights[loraA("model.layers.0.block_sparse_moe.experts.gate_up_proj")].Shape().Dimensions,
		"fused w1+w3: rank 2r per expert")
	assert.Equal(t, a.Scale(), a.targets["model.layers.0.block_sparse_moe.experts.gate_up_proj"].scale, "alpha doubles with the rank: same α/r")
	for _, n := range a.weightNames() {
		if strings.HasSuffix(n, ".lora_B.weight") {
			vals, err := model.Float32Values(m.Weights[n])
			require.NoError(t, err)
			assert.Equal(t, make([]float32, len(vals)), vals, "%s starts at zero", n)
		}
	}
	peftNames := map[string]bool{}
	for _, n := range a.weightNames() {
		peftNames[a.peftName(n)] = true
	}
	assert.True(t, peftNames["base_model.model.model.layers.0.mlp.experts.lora_A.weight"], "gate_up_proj alone on the experts: no base_layer")
	assert.True(t, peftNames["base_model.model.model.layers.0.mlp.gate.lora_B.weight"])
}
