package dpo

import (
	"context"
	"fmt"
	"maps"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"

	"handbook/data"
	"handbook/model"
)

// RefLogps are the reference model's summed completion log-probs of one pair: what
// precompute_ref_log_probs stores per sample and what a dataset may supply as the
// ref_chosen_logps / ref_rejected_logps columns.
type RefLogps struct {
	Chosen, Rejected float64
}

// scorer computes the reference log-probs of host batches in its own forward pass: the frozen
// reference's weights are inputs of an inference graph only, so they never meet the optimizer.
type scorer struct {
	dec     *model.Decoder
	weights model.Weights
	names   []string
	exec    *Exec
}

func newScorer(m *model.Model, dec *model.Decoder) (*scorer, error) {
	s := &scorer{dec: dec, weights: m.Weights, names: m.Weights.Names()}
	nw := len(s.names)
	exec, err := NewExec(m.Backend(), func(inputs []*Node) []*Node {
		p := model.ParamsFromNodes(s.names, inputs[:nw])
		b := map[string]*Node{"input_ids": inputs[nw], "attention_mask": inputs[nw+1], "labels": inputs[nw+2]}
		return []*Node{ReferenceLogps(s.dec, p, b)}
	})
	if err != nil {
		return nil, fmt.Errorf("reference scorer: %w", err)
	}
	s.exec = exec
	return s, nil
}

// score returns the reference log-probs of every pair of a collated batch.
func (s *scorer) score(batch map[string]*tensors.Tensor) ([]RefLogps, error) {
	args := make([]any, 0, len(s.names)+3)
	for _, n := range s.names {
		args = append(args, s.weights[n])
	}
	args = append(args, batch["input_ids"], batch["attention_mask"], batch["labels"])
	out, err := s.exec.Exec(args...)
	// The batch goes on to the policy's graphs, which may run on another backend instance:
	// detach it from the reference's.
	for _, n := range []string{"input_ids", "attention_mask", "labels"} {
		if e := batch[n].ToLocal(); e != nil && err == nil {
			err = e
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reference log-probs: %w", err)
	}
	vals, err := tensors.CopyFlatData[float32](out[0])
	if err != nil {
		return nil, fmt.Errorf("reference log-probs: %w", err)
	}
	n := len(vals) / 2
	res := make([]RefLogps, n)
	for i := range res {
		res[i] = RefLogps{Chosen: float64(vals[i]), Rejected: float64(vals[n+i])}
	}
	return res, nil
}

func (s *scorer) finalize() {
	if s != nil && s.exec != nil {
		s.exec.Finalize()
	}
}

// precompute scores every pair once, batchSize pairs at a time (TRL's precompute_ref_log_probs).
func (s *scorer) precompute(ctx context.Context, pairs []data.PreferenceSample, collate data.CollateConfig, batchSize int) ([]RefLogps, error) {
	out := make([]RefLogps, 0, len(pairs))
	for start := 0; start < len(pairs); start += batchSize {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b, err := collatePairs(pairs[start:min(start+batchSize, len(pairs))], nil, collate)
		if err != nil {
			return nil, err
		}
		logps, err := s.score(b)
		if err != nil {
			return nil, err
		}
		out = append(out, logps...)
	}
	return out, nil
}

// copyModel returns a second copy of m's weights (the frozen reference TRL loads when no
// ref_model is given): host copies, so the policy's buffers being donated to the optimizer
// never touch it.
func copyModel(m *model.Model) (*model.Model, error) {
	w := make(model.Weights, len(m.Weights))
	for name, t := range maps.All(m.Weights) {
		c, err := t.LocalClone()
		if err != nil {
			return nil, fmt.Errorf("copy reference weight %s: %w", name, err)
		}
		w[name] = c
	}
	return model.New(m.Backend(), m.Config, w)
}
