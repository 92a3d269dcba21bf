package handbook

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/data"
	"handbook/train"
)

const (
	seedCopy    = "testdata/recipes"
	anchorsRoot = "../shared/anchors/alignment-handbook"
)

// recipeFiles lists the recipe YAMLs under root (not the accelerate configs).
func recipeFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".yaml") && !strings.Contains(p, "accelerate_configs") {
			files = append(files, p)
		}
		return nil
	})
	require.NoError(t, err)
	return files
}

// loadAll loads every recipe under root for its task and checks invariants
// every loaded recipe must satisfy.
func loadAll(t *testing.T, root string) {
	files := recipeFiles(t, root)
	require.NotEmpty(t, files)
	for _, p := range files {
		t.Run(strings.TrimPrefix(p, root+"/"), func(t *testing.T) {
			r, err := LoadRecipe(p, TaskFromPath(p), nil)
			require.NoError(t, err)
			assert.Equal(t, p, r.Path)
			assert.NotEmpty(t, r.Model.ModelNameOrPath)
			sources := 0
			if r.Data.Mixture != nil {
				sources++
			}
			if r.Data.Legacy != nil {
				sources++
				assert.Len(t, r.Data.Legacy.Order, len(r.Data.Legacy.Mixer))
			}
			if r.Data.DatasetName != "" {
				sources++
			}
			assert.Equal(t, 1, sources, "exactly one data source")
			assert.Subset(t, []string{"tensorboard", "wandb"}, r.Training.ReportTo)
			for _, w := range r.Warnings {
				assert.True(t, strings.HasPrefix(w, p), "warning %q names the file", w)
			}
		})
	}
}

func TestLoadSeedRecipes(t *testing.T) {
	loadAll(t, seedCopy)
}

// TestLoadAnchorRecipes loads the seed's recipes where they are checked out
// beside the project, and checks testdata holds an identical copy of each.
func TestLoadAnchorRecipes(t *testing.T) {
	if _, err := os.Stat(anchorsRoot); err != nil {
		if os.Getenv("CI") == "true" && !os.IsNotExist(err) {
			t.Fatalf("anchors: %v", err)
		}
		t.Skipf("%s not present", anchorsRoot)
	}
	loadAll(t, anchorsRoot)
	for _, p := range recipeFiles(t, anchorsRoot) {
		want, err := os.ReadFile(p)
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(seedCopy, strings.TrimPrefix(p, anchorsRoot)))
		require.NoError(t, err, "testdata lacks a copy of %s", p)
		assert.True(t, bytes.Equal(want, got), "testdata copy of %s differs", p)
	}
}

func seedPath(rel string) string { return filepath.Join(seedCopy, rel) }

func TestSeedRecipeValues(t *testing.T) {
	t.Run("dataset_mixture", func(t *testing.T) {
		r, err := LoadRecipe(seedPath("recipes/zephyr-7b-beta/sft/config_full.yaml"), TaskSFT, nil)
		require.NoError(t, err)
		m := r.Data.Mixture
		require.NotNil(t, m)
		require.Len(t, m.Datasets, 2)
		assert.Equal(t, data.DatasetConfig{ID: "HuggingFaceH4/ultrachat_200k", Config: "default", Split: "test_sft",
			Columns: []string{"messages"}, Weight: new(1.0)}, m.Datasets[1])
		assert.Equal(t, new(1000.0), m.TestSplitSize)
		assert.Nil(t, r.Data.Legacy)
		assert.Equal(t, "bfloat16", r.Model.Dtype)
		assert.Equal(t, new(2048), r.Training.MaxLength, "max_seq_length is max_length")
		assert.Equal(t, 100.0, r.Training.SaveSteps)
		assert.Equal(t, 0.1, r.Training.WarmupRatio)
		assert.True(t, r.Training.DoEval)
		assert.Equal(t, []string{"wandb"}, r.Training.ReportTo, "an offline W&B run")
		assert.True(t, r.Training.Publish.PushToHub)
		assert.Equal(t, "every_save", r.Training.Publish.HubStrategy)
		assert.Equal(t, "flash_attention_2", r.Model.AttnImplementation)
		assert.Equal(t, 12, r.Ignored["dataset_num_proc"])
	})
	t.Run("legacy dataset_mixer", func(t *testing.T) {
		r, err := LoadRecipe(seedPath("legacy-2025-07-11/recipes/constitutional-ai/sft/config_grok.yaml"), TaskSFT, nil)
		require.NoError(t, err)
		l := r.Data.Legacy
		require.NotNil(t, l)
		assert.Equal(t, map[string]float64{"HuggingFaceH4/grok-conversation-harmless": 0.15, "HuggingFaceH4/ultrachat_200k": 1}, l.Mixer)
		assert.Equal(t, []string{"HuggingFaceH4/grok-conversation-harmless", "HuggingFaceH4/ultrachat_200k"}, l.Order)
		assert.Equal(t, []string{"train_sft", "test_sft"}, l.Splits)
		assert.Nil(t, r.Data.Mixture)
		assert.Equal(t, 12, r.Ignored["preprocessing_num_workers"])
	})
	t.Run("legacy dataset_configs", func(t *testing.T) {
		r, err := LoadRecipe(seedPath("legacy-2025-07-11/recipes/gpt2-nl/cpt/config_full.yaml"), TaskSFT, nil)
		require.NoError(t, err)
		assert.Equal(t, []string{"tiny"}, r.Data.Legacy.Configs)
		assert.Equal(t, []string{"train"}, r.Data.Legacy.Splits)
		assert.Equal(t, "no", r.Training.EvalStrategy)
		assert.False(t, r.Training.DoEval)
	})
	t.Run("dataset_name", func(t *testing.T) {
		r, err := LoadRecipe(seedPath("recipes/smollm2/sft/config.yaml"), TaskSFT, nil)
		require.NoError(t, err)
		assert.Equal(t, "HuggingFaceTB/smoltalk", r.Data.DatasetName)
		assert.Equal(t, "all", r.Data.DatasetConfig)
		assert.Equal(t, "train", r.Data.DatasetTrainSplit)
		assert.Equal(t, "test", r.Data.DatasetTestSplit)
		assert.Contains(t, r.Data.ChatTemplate, "<|im_start|>")
	})
	t.Run("legacy aliases", func(t *testing.T) {
		r, err := LoadRecipe(seedPath("legacy-2025-07-11/recipes/smollm2/sft/config.yaml"), TaskSFT, nil)
		require.NoError(t, err)
		assert.Equal(t, "epoch", r.Training.EvalStrategy, "evaluation_strategy")
		assert.Equal(t, "HuggingFaceTB/SmolLM2-1.7B-Instruct", r.Model.TokenizerNameOrPath)
		assert.Equal(t, true, r.Ignored["use_flash_attention_2"])
	})
	t.Run("dataset_kwargs", func(t *testing.T) {
		r, err := LoadRecipe(seedPath("recipes/zephyr-7b-gemma/sft/config_full.yaml"), TaskSFT, nil)
		require.NoError(t, err)
		assert.Equal(t, DatasetKwargs{AddSpecialTokens: new(false), AppendConcatToken: new(false)}, r.Data.DatasetKwargs)
	})
	t.Run("orpo", func(t *testing.T) {
		r, err := LoadRecipe(seedPath("recipes/zephyr-141b-A35b/orpo/config_full.yaml"), TaskORPO, nil)
		require.NoError(t, err)
		tr := r.Training
		assert.Equal(t, 0.05, tr.Beta)
		assert.Equal(t, 5e-6, tr.LearningRate)
		assert.Equal(t, "inverse_sqrt", tr.LRSchedulerType)
		assert.Equal(t, 100.0, tr.WarmupSteps)
		assert.Equal(t, 100, tr.WarmupStepCount(1000))
		assert.Equal(t, "adamw_bnb_8bit", tr.Optim)
		assert.Equal(t, new(2048), tr.MaxLength)
		assert.Equal(t, new(1792), tr.MaxPromptLength)
		assert.Equal(t, "no", tr.SaveStrategy)
	})
	t.Run("qlora dpo", func(t *testing.T) {
		r, err := LoadRecipe(seedPath("recipes/zephyr-7b-beta/dpo/config_qlora.yaml"), TaskDPO, nil)
		require.NoError(t, err)
		m := r.Model
		assert.True(t, m.UsePEFT)
		assert.True(t, m.LoadIn4Bit)
		assert.Equal(t, 128, m.LoraR)
		assert.Equal(t, 128, m.LoraAlpha)
		assert.Equal(t, 0.05, m.LoraDropout)
		assert.Equal(t, []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}, m.LoraTargetModules)
		assert.Equal(t, "paged_adamw_32bit", r.Training.Optim)
		assert.Equal(t, []string{"sigmoid"}, r.Training.LossType)
	})
	t.Run("apo", func(t *testing.T) {
		r, err := LoadRecipe(seedPath("recipes/smollm3/dpo/apo.yaml"), TaskDPO, nil)
		require.NoError(t, err)
		tr := r.Training
		assert.Equal(t, []string{"apo_zero"}, tr.LossType)
		assert.Equal(t, 0.5, tr.SaveSteps)
		assert.Equal(t, 50, train.StepCount(tr.SaveSteps, 100))
		assert.Equal(t, map[string]float64{"min_lr_rate": 0.1}, tr.LRSchedulerKwargs)
		assert.True(t, tr.PaddingFree)
		assert.Equal(t, 0.2, tr.MaxGradNorm)
	})
	t.Run("nulls", func(t *testing.T) {
		r, err := LoadRecipe(seedPath("tests/fixtures/config_sft_full.yaml"), TaskSFT, nil)
		require.NoError(t, err)
		assert.Equal(t, 0, r.Training.SaveTotalLimit, "save_total_limit: null")
		r, err = LoadRecipe(seedPath("recipes/zephyr-7b-beta/dpo/config_full.yaml"), TaskDPO, nil)
		require.NoError(t, err)
		assert.Equal(t, "", r.Model.Dtype, "torch_dtype: null")
	})
}

// writeRecipe writes a recipe YAML into a temporary directory.
func writeRecipe(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "recipe.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

const minimal = "model_name_or_path: tiny\ndataset_name: demo\n"

func TestDefaults(t *testing.T) {
	p := writeRecipe(t, minimal)
	for _, tc := range []struct {
		task     Task
		lr, beta float64
		loss     []string
	}{
		{TaskSFT, 2e-5, 0, []string{"nll"}},
		{TaskDPO, 1e-6, 0.1, []string{"sigmoid"}},
		{TaskORPO, 1e-6, 0.1, nil},
	} {
		t.Run(string(tc.task), func(t *testing.T) {
			r, err := LoadRecipe(p, tc.task, nil)
			require.NoError(t, err)
			tr := r.Training
			assert.Equal(t, tc.lr, tr.LearningRate)
			assert.Equal(t, tc.beta, tr.Beta)
			assert.Equal(t, tc.loss, tr.LossType)
			assert.Equal(t, "linear", tr.LRSchedulerType)
			assert.Equal(t, 3.0, tr.NumTrainEpochs)
			assert.Equal(t, 8, tr.PerDeviceTrainBatchSize)
			assert.Equal(t, 10.0, tr.LoggingSteps)
			assert.Equal(t, 500.0, tr.SaveSteps)
			assert.Equal(t, "steps", tr.SaveStrategy)
			assert.Equal(t, "no", tr.EvalStrategy)
			assert.Equal(t, 1.0, tr.MaxGradNorm)
			assert.Equal(t, "adamw_torch_fused", tr.Optim)
			assert.Equal(t, new(1024), tr.MaxLength)
			assert.True(t, tr.BF16)
			assert.True(t, tr.GradientCheckpointing)
			assert.Equal(t, 42, tr.Seed)
			assert.Equal(t, "trainer_output", tr.OutputDir)
			assert.Equal(t, "trainer_output", tr.RunName)
			assert.Empty(t, tr.ReportTo)
			assert.Equal(t, "float32", r.Model.Dtype)
			assert.Equal(t, "main", r.Model.ModelRevision)
			assert.Equal(t, 16, r.Model.LoraR)
			assert.Equal(t, 32, r.Model.LoraAlpha)
			assert.Empty(t, r.Warnings)
			assert.Empty(t, r.Ignored)
		})
	}
}

func TestOverrides(t *testing.T) {
	p := writeRecipe(t, minimal+"learning_rate: 1.0e-4\nlora_target_modules: all-linear\nreport_to: [tensorboard]\n")
	accel := seedPath("recipes/accelerate_configs/zero3.yaml")
	for _, tc := range []struct {
		name      string
		task      Task
		overrides []string
		check     func(t *testing.T, r *Recipe)
	}{
		{"none", TaskSFT, nil, func(t *testing.T, r *Recipe) {
			assert.Equal(t, 1e-4, r.Training.LearningRate)
			assert.Equal(t, []string{"all-linear"}, r.Model.LoraTargetModules)
		}},
		{"float", TaskSFT, []string{"--learning_rate=3e-4"}, func(t *testing.T, r *Recipe) {
			assert.Equal(t, 3e-4, r.Training.LearningRate)
		}},
		{"int and bool", TaskSFT, []string{"--max_steps=20", "--bf16=false", "--packing=True", "--use_peft=yes"}, func(t *testing.T, r *Recipe) {
			assert.Equal(t, 20, r.Training.MaxSteps)
			assert.False(t, r.Training.BF16)
			assert.True(t, r.Training.Packing)
			assert.True(t, r.Model.UsePEFT)
		}},
		{"comma list", TaskSFT, []string{"--lora_target_modules=q_proj, v_proj", "--report_to=none"}, func(t *testing.T, r *Recipe) {
			assert.Equal(t, []string{"q_proj", "v_proj"}, r.Model.LoraTargetModules)
			assert.Empty(t, r.Training.ReportTo)
		}},
		{"float list", TaskDPO, []string{"--loss_type=sigmoid,sft", "--loss_weights=0.8,0.2"}, func(t *testing.T, r *Recipe) {
			assert.Equal(t, []string{"sigmoid", "sft"}, r.Training.LossType)
			assert.Equal(t, []float64{0.8, 0.2}, r.Training.LossWeights)
		}},
		{"None unsets", TaskSFT, []string{"--max_length=None", "--data_seed=7"}, func(t *testing.T, r *Recipe) {
			assert.Nil(t, r.Training.MaxLength)
			assert.Equal(t, new(7), r.Training.DataSeed)
		}},
		{"alias", TaskSFT, []string{"--max_seq_length=512", "--torch_dtype=bfloat16"}, func(t *testing.T, r *Recipe) {
			assert.Equal(t, new(512), r.Training.MaxLength)
			assert.Equal(t, "bfloat16", r.Model.Dtype)
		}},
		{"fraction", TaskSFT, []string{"--save_steps=0.25", "--warmup_steps=0.1"}, func(t *testing.T, r *Recipe) {
			assert.Equal(t, 0.25, r.Training.SaveSteps)
			assert.Equal(t, 10, r.Training.WarmupStepCount(100))
		}},
		{"mapping", TaskSFT, []string{"--lr_scheduler_type=cosine_with_min_lr", `--lr_scheduler_kwargs={"min_lr_rate": 0.1}`}, func(t *testing.T, r *Recipe) {
			assert.Equal(t, map[string]float64{"min_lr_rate": 0.1}, r.Training.LRSchedulerKwargs)
		}},
		{"data block", TaskSFT, []string{"--dataset_name=None", "--dataset_mixture={datasets: [{id: a, weight: 0.5}], test_split_size: 0.1}"}, func(t *testing.T, r *Recipe) {
			require.NotNil(t, r.Data.Mixture)
			assert.Equal(t, []data.DatasetConfig{{ID: "a", Weight: new(0.5)}}, r.Data.Mixture.Datasets)
		}},
		{"legacy mixer keeps order", TaskSFT, []string{"--dataset_name=None", "--dataset_mixer={b: 0.5, a: 1}"}, func(t *testing.T, r *Recipe) {
			assert.Equal(t, []string{"b", "a"}, r.Data.Legacy.Order)
		}},
		{"ignored key warns", TaskSFT, []string{"--use_liger_kernel=true", "--tf32=false"}, func(t *testing.T, r *Recipe) {
			require.Len(t, r.Warnings, 1)
			assert.Contains(t, r.Warnings[0], "override --use_liger_kernel=true: use_liger_kernel ignored")
			assert.Equal(t, false, r.Ignored["tf32"])
		}},
		{"hub keys", TaskSFT, []string{"--push_to_hub=true", "--hub_model_id=org/m", "--hub_strategy=checkpoint", "--hub_private_repo=true",
			"--push_to_hub_revision=true", "--hub_model_revision=v1"}, func(t *testing.T, r *Recipe) {
			p := r.Training.Publish
			assert.Equal(t, PublishArguments{PushToHub: true, HubModelID: "org/m", HubStrategy: "checkpoint", HubPrivateRepo: new(true),
				PushToHubRevision: true, HubModelRevision: "v1"}, p)
			assert.Equal(t, "v1", p.Revision())
			p.HubRevision = "dev"
			assert.Equal(t, "dev", p.Revision(), "transformers' hub_revision wins")
			assert.Empty(t, r.Warnings)
		}},
		{"config_file", TaskSFT, []string{"--config_file=" + accel}, func(t *testing.T, r *Recipe) {
			require.NotNil(t, r.Accelerate)
			assert.Equal(t, accel, r.Accelerate.Path)
			assert.Equal(t, "DEEPSPEED", r.Accelerate.Settings["distributed_type"])
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := LoadRecipe(p, tc.task, tc.overrides)
			require.NoError(t, err)
			tc.check(t, r)
		})
	}
}

func TestOverrideErrors(t *testing.T) {
	p := writeRecipe(t, minimal)
	for _, tc := range []struct {
		name      string
		task      Task
		overrides []string
		want      string
	}{
		{"duplicate", TaskSFT, []string{"--seed=1", "--seed=2"}, "override --seed=2: seed is already overridden by --seed=1"},
		{"duplicate alias", TaskSFT, []string{"--max_length=1", "--max_seq_length=2"}, "max_seq_length is already overridden by --max_length=1"},
		{"unknown", TaskSFT, []string{"--learnig_rate=1"}, `override --learnig_rate=1: unknown key "learnig_rate" (did you mean "learning_rate"?)`},
		{"wrong type", TaskSFT, []string{"--learning_rate=fast"}, `override --learning_rate=fast: want a number, got "fast"`},
		{"wrong int", TaskSFT, []string{"--max_steps=1.5"}, `want an integer, got "1.5"`},
		{"wrong bool", TaskSFT, []string{"--bf16=maybe"}, `want true or false, got "maybe"`},
		{"no value", TaskSFT, []string{"--bf16"}, "override --bf16: want --key=value"},
		{"no dashes", TaskSFT, []string{"bf16=true"}, "want --key=value"},
		{"task key", TaskSFT, []string{"--beta=0.1"}, "beta is only for dpo and orpo; this recipe is loaded for sft"},
		{"bad mapping", TaskSFT, []string{"--lr_scheduler_kwargs=[1"}, "want a mapping to numbers in YAML or JSON"},
		{"missing config_file", TaskSFT, []string{"--config_file=/nonexistent/accelerate.yaml"}, "override --config_file=/nonexistent/accelerate.yaml: open /nonexistent/accelerate.yaml"},
		{"validation after overrides", TaskSFT, []string{"--save_steps=0"}, "override --save_steps=0: save_steps: 0 must be > 0 when save_strategy is steps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadRecipe(p, tc.task, tc.overrides)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), p)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestBadRecipes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	for _, tc := range []struct {
		name string
		task Task
		body string
		want string // after "recipe.yaml"
	}{
		{"typo", TaskSFT, minimal + "learnig_rate: 1e-5\n", `:3: unknown key "learnig_rate" (did you mean "learning_rate"?)`},
		{"no suggestion", TaskSFT, minimal + "frobnicate: 1\n", `:3: unknown key "frobnicate"`},
		{"wrong type", TaskSFT, minimal + "learning_rate: fast\n", `:3: learning_rate: want a number, got "fast"`},
		{"list for number", TaskSFT, minimal + "num_train_epochs: [1]\n", `:3: num_train_epochs: want a number, got the list [1]`},
		{"fraction for int", TaskSFT, minimal + "per_device_train_batch_size: 2.5\n", `:3: per_device_train_batch_size: want an integer, got 2.5`},
		{"string for bool", TaskSFT, minimal + "bf16: sure\n", `:3: bf16: want true or false, got "sure"`},
		{"unknown hub_strategy", TaskSFT, minimal + "hub_strategy: sometimes\n", `:3: hub_strategy: "sometimes" is not one of [end every_save checkpoint all_checkpoints]`},
		{"nested unknown", TaskSFT, "model_name_or_path: m\ndataset_mixture:\n  datasets:\n    - id: a\n      wieght: 0.5\n",
			`:5: dataset_mixture.datasets[0]: unknown key "wieght" (did you mean "weight"?)`},
		{"nested wrong type", TaskSFT, "model_name_or_path: m\ndataset_mixture:\n  datasets:\n    - id: a\n      weight: lots\n",
			`:2: dataset_mixture: 'datasets[0].weight'`},
		{"dataset_kwargs unknown", TaskSFT, minimal + "dataset_kwargs:\n  add_special_token: false\n", `:4: dataset_kwargs: unknown key "add_special_token" (did you mean "add_special_tokens"?)`},
		{"missing dataset", TaskSFT, "model_name_or_path: m\n", ": no dataset: set dataset_mixture"},
		{"two datasets", TaskSFT, minimal + "dataset_mixer: {a: 1}\n", ":2: dataset_name and dataset_mixer (" + "<p>:3) both set the data; keep one"},
		{"splits without mixer", TaskSFT, "model_name_or_path: m\ndataset_splits: [train]\n", ":2: dataset_splits: needs dataset_mixer"},
		{"config without name", TaskSFT, "model_name_or_path: m\ndataset_mixer: {a: 1}\ndataset_config: x\n", ":3: dataset_config: needs dataset_name"},
		{"negative weight", TaskSFT, "model_name_or_path: m\ndataset_mixture:\n  datasets:\n    - id: a\n      weight: -0.5\n",
			":2: dataset_mixture.datasets[0] (a): weight -0.5 must be in (0, 1]"},
		{"negative fraction", TaskSFT, "model_name_or_path: m\ndataset_mixer:\n  a: -0.5\n", ":2: dataset_mixer: a: -0.5: dataset fractions cannot be negative"},
		{"bad test_split_size", TaskSFT, "model_name_or_path: m\ndataset_mixture:\n  datasets: [{id: a}]\n  test_split_size: -1\n", ":2: dataset_mixture.test_split_size"},
		{"no model", TaskSFT, "dataset_name: d\n", ": model_name_or_path is not set"},
		{"output_dir is a file", TaskSFT, minimal + "output_dir: " + file + "\n", ":3: output_dir: " + file + " exists and is not a directory"},
		{"save_steps zero", TaskSFT, minimal + "save_strategy: steps\nsave_steps: 0\n", ":4: save_steps: 0 must be > 0 when save_strategy is steps"},
		{"save_steps negative default strategy", TaskSFT, minimal + "save_steps: -5\n", ":3: save_steps: -5 must be > 0 when save_strategy is steps"},
		{"save_steps fractional", TaskSFT, minimal + "save_steps: 2.5\n", ":3: save_steps: 2.5 must be a whole number"},
		{"eval_steps zero", TaskSFT, minimal + "eval_strategy: steps\neval_steps: -1\n", ":4: eval_steps: -1 must be > 0 when eval_strategy is steps"},
		{"save best", TaskSFT, minimal + "save_strategy: best\n", `:3: save_strategy: "best" needs metric_for_best_model`},
		{"strategy typo", TaskSFT, minimal + "eval_strategy: epochs\n", `:3: eval_strategy: "epochs" is not valid (did you mean "epoch"?)`},
		{"4 and 8 bit", TaskSFT, minimal + "use_peft: true\nload_in_4bit: true\nload_in_8bit: true\n", ":5: load_in_8bit: load_in_4bit and load_in_8bit are both true"},
		{"quantized without peft", TaskSFT, minimal + "load_in_4bit: true\n", ":3: load_in_4bit: a quantized base model can only be trained with an adapter"},
		{"lora_r", TaskSFT, minimal + "use_peft: true\nlora_r: 0\n", ":4: lora_r: 0 must be ≥ 1"},
		{"lora_dropout", TaskSFT, minimal + "use_peft: true\nlora_dropout: 1\n", ":4: lora_dropout: 1 must be in [0, 1)"},
		{"quant type", TaskSFT, minimal + "bnb_4bit_quant_type: nf5\n", `:3: bnb_4bit_quant_type: "nf5" is not valid (did you mean "nf4"?)`},
		{"dtype alias named", TaskSFT, minimal + "torch_dtype: bfloat15\n", `:3: torch_dtype: "bfloat15" is not valid (did you mean "bfloat16"?)`},
		{"bf16 and fp16", TaskSFT, minimal + "bf16: true\nfp16: true\n", ":4: fp16: bf16 and fp16 are both true"},
		{"fp16", TaskSFT, minimal + "fp16: true\n", ":3: fp16: float16 mixed precision (loss scaling) is not supported; use bf16: true"},
		{"float16 weights", TaskSFT, minimal + "torch_dtype: float16\n", ":3: torch_dtype: float16 weights are not supported; use bfloat16"},
		{"attention typo", TaskSFT, minimal + "attn_implementation: flash_attention2\n", `:3: attn_implementation: "flash_attention2" is not valid (did you mean "flash_attention_2"?)`},
		{"batch size", TaskSFT, minimal + "per_device_train_batch_size: 0\n", ":3: per_device_train_batch_size: 0 must be ≥ 1"},
		{"nothing to train", TaskSFT, minimal + "num_train_epochs: 0\n", ":3: num_train_epochs: 0 with max_steps -1 leaves nothing to train"},
		{"negative lr", TaskSFT, minimal + "learning_rate: -1\n", ":3: learning_rate: -1 must be ≥ 0"},
		{"warmup_ratio", TaskSFT, minimal + "warmup_ratio: 1.5\n", ":3: warmup_ratio: 1.5 must be in [0, 1]"},
		{"scheduler typo", TaskSFT, minimal + "lr_scheduler_type: cosin\n", `:3: lr_scheduler_type: "cosin" is not valid (did you mean "cosine"?)`},
		{"min_lr missing", TaskSFT, minimal + "lr_scheduler_type: cosine_with_min_lr\n", ": lr_scheduler_kwargs: cosine_with_min_lr needs exactly one of min_lr and min_lr_rate"},
		{"optim typo", TaskSFT, minimal + "optim: adamw_torh\n", `:3: optim: "adamw_torh" is not valid (did you mean "adamw_torch"?)`},
		{"log level", TaskSFT, minimal + "log_level: loud\n", `:3: log_level: "loud" is not one of`},
		{"max_length", TaskSFT, minimal + "max_length: 0\n", ":3: max_length: 0 must be ≥ 1"},
		{"sft loss", TaskSFT, minimal + "loss_type: sigmoid\n", `:3: loss_type: "sigmoid" is not one of nll, dft`},
		{"packing strategy", TaskSFT, minimal + "packing_strategy: bdf\n", `:3: packing_strategy: "bdf" is not valid (did you mean "bfd"?)`},
		{"sft gets dpo key", TaskSFT, minimal + "beta: 0.1\n", ":3: beta is only for dpo and orpo; this recipe is loaded for sft"},
		{"dpo gets sft key", TaskDPO, minimal + "packing: true\n", ":3: packing is only for sft; this recipe is loaded for dpo"},
		{"dpo loss", TaskDPO, minimal + "loss_type: [sigmoid, ipp]\n", `:3: loss_type: "ipp" is not valid (did you mean "ipo"?)`},
		{"dpo loss weights", TaskDPO, minimal + "loss_type: [sigmoid, sft]\nloss_weights: [1]\n", ":4: loss_weights: 1 weights for 2 loss types"},
		{"beta", TaskDPO, minimal + "beta: 0\n", ":3: beta: 0 must be > 0"},
		{"label smoothing", TaskDPO, minimal + "label_smoothing: 0.5\n", ":3: label_smoothing: 0.5 must be in [0, 0.5)"},
		{"prompt too long", TaskORPO, minimal + "max_length: 512\nmax_prompt_length: 512\n", ":4: max_prompt_length: 512 leaves no room"},
		{"duplicate key", TaskSFT, minimal + "seed: 1\nseed: 2\n", ":4: seed is set twice (also at line 3)"},
		{"alias and key", TaskSFT, minimal + "max_length: 1\nmax_seq_length: 2\n", ":4: max_seq_length and max_length (line 3) set the same key; keep one"},
		{"empty", TaskSFT, "", ": empty file"},
		{"not a mapping", TaskSFT, "- a\n- b\n", ":1: a recipe is a mapping of keys to values"},
		{"bad yaml", TaskSFT, "a: [\n", ": yaml: line 1:"},
		{"unknown task", "ppo", minimal, `: unknown task "ppo"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeRecipe(t, tc.body)
			_, err := LoadRecipe(p, tc.task, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), p+strings.ReplaceAll(tc.want, "<p>", p))
			assert.NotContains(t, err.Error(), "\n")
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := LoadRecipe(filepath.Join(dir, "nope.yaml"), TaskSFT, nil)
		require.ErrorIs(t, err, fs.ErrNotExist)
		assert.Contains(t, err.Error(), "nope.yaml")
	})
}

func TestWarnings(t *testing.T) {
	p := writeRecipe(t, minimal+"use_liger_kernel: true\ntrust_remote_code: false\nreport_to: [comet_ml, tensorboard]\npacking_strategy: ffd\n")
	r, err := LoadRecipe(p, TaskSFT, []string{"--use_liger_kernel=false"})
	require.NoError(t, err)
	assert.Equal(t, []string{
		p + ":3: use_liger_kernel ignored: " + ignoredKeys["use_liger_kernel"],
		p + `:6: packing_strategy "ffd" is TRL's older name of "bfd"; using "bfd"`,
		p + ":5: report_to: comet_ml not available here; metrics go to TensorBoard and JSONL",
	}, r.Warnings, "one warning per key; none for false")
	assert.Equal(t, false, r.Ignored["use_liger_kernel"])
	assert.Equal(t, false, r.Ignored["trust_remote_code"])
	assert.Equal(t, []string{"tensorboard"}, r.Training.ReportTo)
	assert.Equal(t, "bfd", r.Training.PackingStrategy)
}

func TestKeyTables(t *testing.T) {
	for name := range ignoredKeys {
		_, typed := keys[name]
		assert.False(t, typed, "%s is both ignored and typed", name)
	}
	for alias, target := range aliases {
		_, typed := keys[target]
		assert.True(t, typed, "alias %s points at unknown %s", alias, target)
		_, clash := keys[alias]
		assert.False(t, clash, "alias %s is also a key", alias)
	}
	assert.Equal(t, ignoredKeys, IgnoredKeys())
	for _, k := range []string{"dataset_mixer", "dataset_splits", "dataset_configs", "dataset_mixture", "learning_rate", "beta"} {
		assert.Contains(t, keys, k)
	}
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		path      string
		overrides []string
		err       string
	}{
		{"path only", []string{"r.yaml"}, "r.yaml", nil, ""},
		{"equals", []string{"r.yaml", "--learning_rate=1e-4", "--report_to=a,b"}, "r.yaml", []string{"--learning_rate=1e-4", "--report_to=a,b"}, ""},
		{"space", []string{"--seed", "3", "r.yaml", "--bf16", "false"}, "r.yaml", []string{"--seed=3", "--bf16=false"}, ""},
		{"--config", []string{"--config", "r.yaml", "--seed=1"}, "r.yaml", []string{"--seed=1"}, ""},
		{"config_file kept", []string{"r.yaml", "--config_file=z.yaml"}, "r.yaml", []string{"--config_file=z.yaml"}, ""},
		{"value with =", []string{"r.yaml", "--run_name=a=b"}, "r.yaml", []string{"--run_name=a=b"}, ""},
		{"no recipe", []string{"--seed=1"}, "", nil, "no recipe"},
		{"two recipes", []string{"a.yaml", "b.yaml"}, "", nil, "two recipes given: a.yaml and b.yaml"},
		{"missing value", []string{"r.yaml", "--seed"}, "", nil, `argument "--seed": no value (want --seed=VALUE)`},
		{"flag then flag", []string{"r.yaml", "--seed", "--bf16=true"}, "", nil, "no value"},
		{"single dash", []string{"r.yaml", "-v"}, "", nil, `argument "-v": overrides are spelled --key=value`},
		{"empty key", []string{"r.yaml", "--=1"}, "", nil, "no key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, overrides, err := ParseArgs(tc.args)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.path, path)
			assert.Equal(t, tc.overrides, overrides)
		})
	}
}

func TestSteps(t *testing.T) {
	for _, tc := range []struct {
		v     float64
		total int
		want  int
	}{
		{100, 1000, 100}, {0.5, 1000, 500}, {0.05, 101, 6}, {0, 10, 0}, {1, 10, 1},
	} {
		assert.Equal(t, tc.want, train.StepCount(tc.v, tc.total), "train.StepCount(%v, %d)", tc.v, tc.total)
	}
	for _, tc := range []struct {
		steps, ratio float64
		total, want  int
	}{
		{0, 0.1, 1000, 100}, {0, 0.03, 101, 4}, {50, 0.1, 1000, 50}, {0.2, 0.5, 10, 2}, {0, 0, 10, 0},
	} {
		tr := TrainingArguments{WarmupSteps: tc.steps, WarmupRatio: tc.ratio}
		assert.Equal(t, tc.want, tr.WarmupStepCount(tc.total), "%+v", tc)
	}
}
