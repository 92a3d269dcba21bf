package handbook

import (
	"fmt"
	"log/slog"

	dt "github.com/gomlx/compute/dtypes"

	"handbook/model"
)

// weightsDType maps the recipe's dtype (torch_dtype) onto the dtype the weights are loaded in, as
// TRL's ModelConfig does: "" means TRL's default float32, "auto" the checkpoint's own
// torch_dtype/dtype from config.json (float32 when it names none). float16 weights are not
// supported: the error says to use bfloat16.
func weightsDType(name, modelDir string) (dt.DType, error) {
	if name == "auto" {
		cfg, err := model.LoadConfig(modelDir)
		if err != nil {
			return dt.InvalidDType, err
		}
		name = cfg.DType
		if name == "" {
			name = cfg.TorchDType
		}
	}
	switch name {
	case "", "float32":
		return dt.Float32, nil
	case "bfloat16":
		return dt.BFloat16, nil
	case "float16":
		return dt.InvalidDType, fmt.Errorf("dtype: float16 weights are not supported (bfloat16 or float32)")
	}
	return dt.InvalidDType, fmt.Errorf("dtype: %q is not supported (auto, bfloat16 or float32)", name)
}

// setPrecision applies bf16 (torch.autocast's bf16 matrix products; trainable weights stored in
// bf16 train through float32 masters in train.Engine) and attn_implementation to the model's
// decoder. fp16 mixed precision is an error (recipe validation reports it first): there is no
// dynamic loss scaling here, and bf16 needs none.
func setPrecision(m *model.Model, r *Recipe, log *slog.Logger) error {
	if r.Training.FP16 {
		return fmt.Errorf("%s: fp16: float16 mixed precision is not supported; use bf16: true", r.Path)
	}
	if r.Training.BF16 {
		m.Decoder.Autocast = dt.BFloat16
	}
	attn, err := model.ParseAttentionImplementation(r.Model.AttnImplementation)
	if err != nil {
		return fmt.Errorf("%s: %w", r.Path, err)
	}
	m.Decoder.Attention, m.Decoder.Logger = attn, log
	log.Info("precision", "weights", model.DTypeName(m.DType()), "bf16_autocast", r.Training.BF16, "attn_implementation", string(attn))
	return nil
}
