package handbook

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/gomlx/compute"
	dt "github.com/gomlx/compute/dtypes"

	"handbook/backend"
	"handbook/model"
	"handbook/tokenizer"
)

// PretrainedOptions tune LoadPretrained; nil means all defaults.
type PretrainedOptions struct {
	// Backend runs the model; nil: backend.New's choice (GOMLX_BACKEND, else an XLA PJRT plugin,
	// else the Go backend), logged to Logger.
	Backend compute.Backend
	// Revision is the Hub revision of a model id ("": "main").
	Revision string
	// DType is the dtype the weights are kept in (from_pretrained's dtype): float32 (the zero
	// value, TRL's default) or bfloat16.
	DType dt.DType
	// FromScratch lets a directory with config.json but no weights start from random weights drawn
	// with Seed, as a recipe's model_name_or_path does; without it that is an error, since a
	// missing checkpoint is more often a mistake than a wish.
	FromScratch bool
	Seed        uint64
	// Logger receives the backend choice and the from-scratch notice; nil discards.
	Logger *slog.Logger
}

// LoadPretrained loads a model and the tokenizer saved with it, as transformers'
// from_pretrained loads both: nameOrPath is a local directory or a Hub model id, downloaded into
// the Hugging Face cache (HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE apply).
func LoadPretrained(ctx context.Context, nameOrPath string, opts *PretrainedOptions) (*model.Model, *tokenizer.Tokenizer, error) {
	var o PretrainedOptions
	if opts != nil {
		o = *opts
	}
	o.Logger = orDiscard(o.Logger)
	if o.Revision == "" {
		o.Revision = "main"
	}
	dir, err := modelDir(ctx, nameOrPath, o.Revision)
	if err != nil {
		return nil, nil, err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	ownBackend := o.Backend == nil
	if ownBackend {
		b, sel, err := backend.New()
		if err != nil {
			return nil, nil, err
		}
		o.Logger.Info(sel.String())
		o.Backend = b
	}
	m, err := loadModelDir(dir, o)
	if err != nil {
		if ownBackend { // nothing else holds it
			o.Backend.Finalize()
		}
		return nil, nil, err
	}
	return m, tok, nil
}

// loadModelDir loads the model in a local directory, or draws it from scratch (opts.FromScratch)
// when the directory has a config but no weights.
func loadModelDir(dir string, opts PretrainedOptions) (*model.Model, error) {
	if model.HasWeights(dir) {
		return model.Load(opts.Backend, dir, model.LoadOptions{DType: opts.DType})
	}
	if !opts.FromScratch {
		return nil, fmt.Errorf("%s has no safetensors weights (model.safetensors or its index); set PretrainedOptions.FromScratch to start from random weights", dir)
	}
	opts.Logger.Warn("no weights in the model directory: initializing from scratch", "dir", dir, "seed", opts.Seed)
	return model.Init(opts.Backend, dir, opts.DType, opts.Seed)
}
