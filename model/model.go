package model

import (
	"fmt"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"
)

// Model is a decoder with its weights on a backend: what Load returns and Save writes.
type Model struct {
	Config  *Config
	Weights Weights
	Decoder *Decoder

	backend          compute.Backend
	generationConfig []byte // generation_config.json as loaded, written back by Save
	mu               sync.Mutex
	forward          *Exec
}

// New wraps weights that match cfg (checked by name and shape) into a Model on backend.
func New(backend compute.Backend, cfg *Config, w Weights) (*Model, error) {
	if err := checkWeights(cfg, w, "weights"); err != nil {
		return nil, err
	}
	return &Model{Config: cfg, Weights: w, Decoder: NewDecoder(cfg), backend: backend}, nil
}

// NewDecoder returns cfg's decoder as transformers' forward runs it: the router load-balancing
// loss weighted by router_aux_loss_coef when output_router_logits is set.
func NewDecoder(cfg *Config) *Decoder {
	d := &Decoder{Config: cfg}
	if cfg.OutputRouterLogits {
		d.RouterAuxLossCoef = cfg.RouterAuxLossCoef
	}
	return d
}

// Backend returns the backend the model runs on.
func (m *Model) Backend() compute.Backend { return m.backend }

// Inputs is a host-side batch: rows of equal length. Only IDs is required; PositionIDs default to
// 0…n-1, AttentionMask to all ones, SegmentIDs to one segment per row.
type Inputs struct {
	IDs           [][]int32
	PositionIDs   [][]int32
	AttentionMask [][]int32
	SegmentIDs    [][]int32
}

// tensors validates the batch and returns the four [batch, seq] int32 tensors the forward
// graph takes, filling defaults.
func (in Inputs) tensors() ([]*tensors.Tensor, error) {
	if len(in.IDs) == 0 || len(in.IDs[0]) == 0 {
		return nil, fmt.Errorf("empty batch")
	}
	batch, seq := len(in.IDs), len(in.IDs[0])
	fill := func(name string, rows [][]int32, def func(b, s int) int32) (*tensors.Tensor, error) {
		flat := make([]int32, 0, batch*seq)
		if rows != nil && len(rows) != batch {
			return nil, fmt.Errorf("%s has %d rows, input_ids has %d", name, len(rows), batch)
		}
		for b := 0; b < batch; b++ {
			if rows == nil {
				for s := 0; s < seq; s++ {
					flat = append(flat, def(b, s))
				}
				continue
			}
			if len(rows[b]) != seq {
				return nil, fmt.Errorf("%s row %d has %d entries, want %d", name, b, len(rows[b]), seq)
			}
			flat = append(flat, rows[b]...)
		}
		return tensors.FromFlatDataAndDimensions(flat, batch, seq), nil
	}
	ids, err := fill("input_ids", in.IDs, nil)
	if err != nil {
		return nil, err
	}
	pos, err := fill("position_ids", in.PositionIDs, func(_, s int) int32 { return int32(s) })
	if err != nil {
		return nil, err
	}
	mask, err := fill("attention_mask", in.AttentionMask, func(_, _ int) int32 { return 1 })
	if err != nil {
		return nil, err
	}
	seg, err := fill("segment_ids", in.SegmentIDs, func(_, _ int) int32 { return 0 })
	if err != nil {
		return nil, err
	}
	return []*tensors.Tensor{ids, pos, mask, seg}, nil
}

// paramArgs returns the weights in sorted-name order, the order graph functions receive them.
func (m *Model) paramArgs() ([]string, []any) {
	names := m.Weights.Names()
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = m.Weights[n]
	}
	return names, args
}

// ParamsFromNodes pairs graph nodes with weight names (as ordered by Weights.Names).
func ParamsFromNodes(names []string, nodes []*Node) Params {
	p := make(Params, len(names))
	for i, n := range names {
		p[n] = nodes[i]
	}
	return p
}

// Logits runs a forward pass and returns float32 logits [batch, seq, vocab].
func (m *Model) Logits(in Inputs) (*tensors.Tensor, error) {
	batchTensors, err := in.tensors()
	if err != nil {
		return nil, fmt.Errorf("logits: %w", err)
	}
	names, args := m.paramArgs()
	m.mu.Lock()
	if m.forward == nil {
		m.forward, err = NewExec(m.backend, func(inputs []*Node) *Node {
			n := len(names)
			p := ParamsFromNodes(names, inputs[:n])
			b := Batch{InputIDs: inputs[n], PositionIDs: inputs[n+1], AttentionMask: inputs[n+2], SegmentIDs: inputs[n+3]}
			return m.Decoder.Logits(p, b)
		})
	}
	exec := m.forward
	m.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("logits: %w", err)
	}
	for _, t := range batchTensors {
		args = append(args, t)
	}
	out, err := exec.Exec(args...)
	if err != nil {
		return nil, fmt.Errorf("logits: %w", err)
	}
	return out[0], nil
}

// Loss returns transformers' causal LM loss for the batch with labels = input_ids (positions
// with attention mask 0 are ignored), plus the number of predicted tokens.
func (m *Model) Loss(in Inputs) (loss float64, tokens int, err error) {
	logits, err := m.Logits(in)
	if err != nil {
		return 0, 0, err
	}
	flat, err := tensors.CopyFlatData[float32](logits)
	if err != nil {
		return 0, 0, err
	}
	vocab := m.Config.VocabSize
	seq := len(in.IDs[0])
	var sum float64
	for b, row := range in.IDs {
		for s := 0; s+1 < seq; s++ {
			if in.AttentionMask != nil && in.AttentionMask[b][s+1] == 0 {
				continue
			}
			off := (b*seq + s) * vocab
			sum -= LogSoftmaxAt(flat[off:off+vocab], int(row[s+1]))
			tokens++
		}
	}
	if tokens == 0 {
		return 0, 0, fmt.Errorf("loss: no token to predict (sequences need at least 2 tokens)")
	}
	return sum / float64(tokens), tokens, nil
}

// Finalize frees compiled graphs. The weights stay usable.
func (m *Model) Finalize() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.forward != nil {
		m.forward.Finalize()
		m.forward = nil
	}
}

// DType returns the storage dtype of the weights.
func (m *Model) DType() dtypes.DType {
	return m.Weights["model.embed_tokens.weight"].DType()
}
