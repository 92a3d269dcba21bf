package lora

import (
	"fmt"
	"strings"

	"github.com/gomlx/compute/dtypes"
)

// RecipeOptions are the handbook recipe keys (TRL's ModelConfig) that configure LoRA and QLoRA.
// A zero rank or alpha means the key was absent and takes TRL's default.
type RecipeOptions struct {
	UsePEFT             bool     // use_peft
	LoraR               int      // lora_r (TRL default 16)
	LoraAlpha           float64  // lora_alpha (TRL default 32)
	LoraDropout         float64  // lora_dropout (handbook.Recipe fills TRL's default 0.05)
	LoraTargetModules   []string // lora_target_modules: a list, or one "all-linear"; nil → PEFT's per-model default
	LoraModulesToSave   []string // lora_modules_to_save
	UseRSLoRA           bool     // use_rslora
	LoadIn4Bit          bool     // load_in_4bit
	LoadIn8Bit          bool     // load_in_8bit
	BnB4BitQuantType    string   // bnb_4bit_quant_type (TRL default "nf4")
	UseBnBNestedQuant   bool     // use_bnb_nested_quant
	BnB4BitComputeDType string   // bnb_4bit_compute_dtype ("float32", "bfloat16"; empty: the model's dtype)
}

// defaultTargets is PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING for the model
// families handbook runs (used when lora_target_modules is absent). It has no entry for
// starcoder2 and smollm3: PEFT then asks for target_modules, and so does FromRecipe.
var defaultTargets = map[string][]string{
	"llama": {"q_proj", "v_proj"}, "mistral": {"q_proj", "v_proj"}, "qwen2": {"q_proj", "v_proj"},
	"qwen3": {"q_proj", "v_proj"}, "gemma": {"q_proj", "v_proj"}, "mixtral": {"q_proj", "v_proj"},
}

// defaultTargetModules is PEFT's default target_modules for a model type.
func defaultTargetModules(modelType string) ([]string, error) {
	if t := defaultTargets[modelType]; t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("lora: lora_target_modules is required for model type %q (Config.TargetModules; PEFT has no default for it)", modelType)
}

// FromRecipe maps recipe keys to an adapter configuration and, for QLoRA, quantization options.
// It returns a nil Config when use_peft is off (a full fine-tune) and nil QuantizeOptions unless
// load_in_4bit. modelType ("llama", …) picks PEFT's default target modules.
func FromRecipe(o RecipeOptions, modelType string) (*Config, *QuantizeOptions, error) {
	if o.LoadIn4Bit && o.LoadIn8Bit {
		return nil, nil, fmt.Errorf("lora: load_in_4bit and load_in_8bit cannot both be set")
	}
	if o.LoadIn8Bit {
		return nil, nil, fmt.Errorf("lora: load_in_8bit (LLM.int8) is not supported; use load_in_4bit (NF4 QLoRA)")
	}
	var q *QuantizeOptions
	if o.LoadIn4Bit {
		if t := o.BnB4BitQuantType; t != "" && t != "nf4" {
			return nil, nil, fmt.Errorf("lora: bnb_4bit_quant_type %q is not supported (only nf4)", t)
		}
		q = &QuantizeOptions{DoubleQuant: o.UseBnBNestedQuant}
		switch strings.TrimPrefix(o.BnB4BitComputeDType, "torch.") {
		case "":
		case "float32":
			q.ComputeDType = dtypes.Float32
		case "bfloat16":
			q.ComputeDType = dtypes.BFloat16
		default:
			return nil, nil, fmt.Errorf("lora: bnb_4bit_compute_dtype %q is not supported (float32 or bfloat16)", o.BnB4BitComputeDType)
		}
		if !o.UsePEFT {
			return nil, nil, fmt.Errorf("lora: load_in_4bit needs use_peft: a quantized base cannot be trained in full")
		}
	}
	if !o.UsePEFT {
		return nil, q, nil
	}
	c := &Config{R: 16, Alpha: 32, Dropout: o.LoraDropout, UseRSLoRA: o.UseRSLoRA, ModulesToSave: o.LoraModulesToSave}
	if o.LoraR != 0 {
		c.R = o.LoraR
	}
	if o.LoraAlpha != 0 {
		c.Alpha = o.LoraAlpha
	}
	c.TargetModules = o.LoraTargetModules
	if len(c.TargetModules) == 0 {
		defaults, err := defaultTargetModules(modelType)
		if err != nil {
			return nil, nil, err
		}
		c.TargetModules = defaults
	}
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	return c, q, nil
}
