package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gomlx/compute/dtypes"

	"handbook/lora"
	"handbook/model"
)

// runMerge folds a LoRA adapter into its base model and writes a full Hugging Face checkpoint
// (PEFT's merge_and_unload + save_pretrained).
func runMerge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("merge", stderr)
	dir := fs.String("model", "", "base model directory or Hub repository id (default: the adapter's base_model_name_or_path)")
	adapterDir := fs.String("adapter", "", "adapter directory (adapter_config.json + adapter_model.safetensors) or Hub repository id")
	revision := revisionFlag(fs)
	out := fs.String("out", "", "output directory for the merged model")
	dtype := fs.String("dtype", "", "dtype written: float32 or bfloat16 (default: the base model's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *adapterDir == "" || *out == "" {
		return fmt.Errorf("--adapter and --out are required")
	}
	if err := resolveDir(ctx, "adapter", adapterDir, ""); err != nil {
		return err
	}
	var outDType dtypes.DType // the base's own dtype
	if *dtype != "" {
		var err error
		if outDType, err = dtypeFlag(*dtype); err != nil {
			return err
		}
	}
	if *dir == "" {
		cfg, err := lora.ReadConfig(*adapterDir)
		if err != nil {
			return err
		}
		if cfg.BaseModel == "" {
			return fmt.Errorf("--model is required: the adapter names no base_model_name_or_path")
		}
		*dir = cfg.BaseModel
	}
	if err := resolveDir(ctx, "model", dir, *revision); err != nil {
		return err
	}
	m, err := loadModel(*dir, stderr)
	if err != nil {
		return err
	}
	defer m.Finalize()
	a, err := lora.Load(m, *adapterDir)
	if err != nil {
		return err
	}
	merged, err := a.Merge()
	if err != nil {
		return err
	}
	defer merged.Finalize()
	if err := merged.Save(*out, model.SaveOptions{DType: outDType}); err != nil {
		return err
	}
	// The merged directory is a complete model: generation settings and the tokenizer come
	// along, the adapter's own copy (trainers save one into output_dir) winning over the base's.
	for _, name := range []string{"generation_config.json", "tokenizer.json", "tokenizer_config.json",
		"special_tokens_map.json", "chat_template.jinja"} {
		for _, src := range []string{*adapterDir, *dir} {
			copied, err := copyFileIfExists(filepath.Join(src, name), filepath.Join(*out, name))
			if err != nil {
				return err
			}
			if copied {
				break
			}
		}
	}
	_, err = fmt.Fprintf(stdout, "merged %d adapted modules (r=%d, scale %.4g) into %s\n", len(a.Modules), a.Config.R, a.Scale(), *out)
	return err
}

// copyFileIfExists copies src to dst when src exists and reports whether it did.
func copyFileIfExists(src, dst string) (bool, error) {
	data, err := os.ReadFile(src)
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, os.WriteFile(dst, data, 0o644)
}
