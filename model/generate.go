package model

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"
)

// GenerateOptions configures Generate. The zero value is greedy decoding of 16 tokens that stops
// at the model's EOS ids.
type GenerateOptions struct {
	MaxNewTokens int
	// DoSample samples from the (temperature, top-k, top-p filtered) distribution; otherwise greedy.
	DoSample    bool
	Temperature float64 // 0 means 1
	TopK        int     // 0 disables
	TopP        float64 // 0 or 1 disables
	Seed        uint64
	// EOSTokenIDs stop a row once generated. Nil means the ids of generation_config.json, else
	// config.json; an empty non-nil slice never stops early.
	EOSTokenIDs []int
	// StopStrings end a row once its decoded new text contains one of them; Decode is required then.
	StopStrings []string
	Decode      func(ids []int32) string
	// PadTokenID left-pads prompts of different lengths (default 0); padded slots are masked out.
	PadTokenID int32
	// OnToken, when set, receives each row's tokens as they are picked (streaming).
	OnToken func(row int, id int32)
}

// Generate continues each prompt with a KV cache and returns the new token ids of each row
// (including the EOS token that stopped it). Prompts of different lengths are left-padded, with
// positions counted from each row's first real token, as transformers does.
func (m *Model) Generate(ctx context.Context, prompts [][]int32, opts GenerateOptions) ([][]int32, error) {
	if len(prompts) == 0 {
		return nil, fmt.Errorf("generate: no prompt")
	}
	if opts.MaxNewTokens == 0 {
		opts.MaxNewTokens = 16
	}
	if opts.MaxNewTokens < 0 {
		return nil, fmt.Errorf("generate: max_new_tokens must be positive, got %d", opts.MaxNewTokens)
	}
	if len(opts.StopStrings) > 0 && opts.Decode == nil {
		return nil, fmt.Errorf("generate: stop strings need a Decode function (a tokenizer)")
	}
	eos := opts.EOSTokenIDs
	if eos == nil {
		eos = m.EOSTokenIDs()
	}
	batch := len(prompts)
	promptLen := 0
	for i, p := range prompts {
		if len(p) == 0 {
			return nil, fmt.Errorf("generate: prompt %d is empty", i)
		}
		for _, id := range p {
			if id < 0 || int(id) >= m.Config.VocabSize {
				return nil, fmt.Errorf("generate: prompt %d has token id %d outside the vocabulary (size %d)", i, id, m.Config.VocabSize)
			}
		}
		promptLen = max(promptLen, len(p))
	}
	total := promptLen + opts.MaxNewTokens

	ids := make([]int32, batch*promptLen)
	pos := make([]int32, batch*promptLen)
	keyValid := make([]int32, batch*total)
	nextPos := make([]int32, batch)
	for b, p := range prompts {
		pad := promptLen - len(p)
		for s := 0; s < promptLen; s++ {
			if s < pad {
				ids[b*promptLen+s] = opts.PadTokenID
				pos[b*promptLen+s] = 1 // transformers fills padded positions with 1
				continue
			}
			ids[b*promptLen+s] = p[s-pad]
			pos[b*promptLen+s] = int32(s - pad)
			keyValid[b*total+s] = 1
		}
		nextPos[b] = int32(len(p))
	}

	step, err := newGenerator(m, batch, promptLen, total)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	defer step.finalize()

	logits, err := step.prefill(tensors.FromFlatDataAndDimensions(ids, batch, promptLen),
		tensors.FromFlatDataAndDimensions(pos, batch, promptLen), keyValid)
	if err != nil {
		return nil, fmt.Errorf("generate: prefill: %w", err)
	}
	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0xda942042e4dd58b5))
	out := make([][]int32, batch)
	done := make([]bool, batch)
	for t := 0; t < opts.MaxNewTokens; t++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		next := make([]int32, batch)
		active := false
		for b := 0; b < batch; b++ {
			if done[b] {
				next[b] = opts.PadTokenID
				continue
			}
			row := logits[b*m.Config.VocabSize : (b+1)*m.Config.VocabSize]
			next[b] = pickToken(row, opts, rng)
			out[b] = append(out[b], next[b])
			if opts.OnToken != nil {
				opts.OnToken(b, next[b])
			}
			if containsID(eos, next[b]) || hitsStopString(opts, out[b]) {
				done[b] = true
			} else {
				active = true
			}
		}
		if !active || t == opts.MaxNewTokens-1 {
			break
		}
		slot := promptLen + t
		for b := 0; b < batch; b++ {
			keyValid[b*total+slot] = 1
		}
		logits, err = step.decode(next, nextPos, keyValid, slot)
		if err != nil {
			return nil, fmt.Errorf("generate: step %d: %w", t, err)
		}
		for b := range nextPos {
			nextPos[b]++
		}
	}
	return out, nil
}

// EOSTokenIDs are the ids that end generation by default: eos_token_id from generation_config.json,
// falling back to config.json.
func (m *Model) EOSTokenIDs() []int {
	if m.generationConfig != nil {
		var gen struct {
			EOS TokenIDs `json:"eos_token_id"`
		}
		if json.Unmarshal(m.generationConfig, &gen) == nil && gen.EOS != nil {
			return gen.EOS
		}
	}
	return m.Config.EOSTokenID
}

func containsID(ids []int, id int32) bool {
	for _, e := range ids {
		if int32(e) == id {
			return true
		}
	}
	return false
}

func hitsStopString(opts GenerateOptions, ids []int32) bool {
	if len(opts.StopStrings) == 0 {
		return false
	}
	text := opts.Decode(ids)
	for _, s := range opts.StopStrings {
		if s != "" && strings.Contains(text, s) {
			return true
		}
	}
	return false
}

// pickToken chooses the next token from one row of logits: argmax (first maximum, like
// torch.argmax) or a sample after transformers' warpers in their order: temperature, top-k, top-p.
func pickToken(logits []float32, opts GenerateOptions, rng *rand.Rand) int32 {
	if !opts.DoSample {
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i
			}
		}
		return int32(best)
	}
	temp := opts.Temperature
	if temp <= 0 {
		temp = 1
	}
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
	keep := len(idx)
	if opts.TopK > 0 && opts.TopK < keep {
		keep = opts.TopK
	}
	probs := make([]float64, keep)
	maxV := float64(logits[idx[0]]) / temp
	var sum float64
	for i := 0; i < keep; i++ {
		probs[i] = math.Exp(float64(logits[idx[i]])/temp - maxV)
		sum += probs[i]
	}
	if opts.TopP > 0 && opts.TopP < 1 {
		var cum float64
		for i := 0; i < keep; i++ {
			cum += probs[i] / sum
			if cum >= opts.TopP {
				keep = i + 1
				break
			}
		}
		sum = 0
		for i := 0; i < keep; i++ {
			sum += probs[i]
		}
	}
	r := rng.Float64() * sum
	for i := 0; i < keep; i++ {
		r -= probs[i]
		if r <= 0 {
			return int32(idx[i])
		}
	}
	return int32(idx[keep-1])
}

// generator holds the two compiled graphs of KV-cache decoding: prefill (the prompt) and decode
// (one token at a slot). The cache has a fixed length, so each graph compiles once.
type generator struct {
	m                   *Model
	batch, prompt, tot  int
	prefillExec, stepEx *Exec
	cache               []*tensors.Tensor // k0, v0, k1, v1, …: [batch, kvHeads, total, headDim]
}

func newGenerator(m *Model, batch, prompt, total int) (*generator, error) {
	g := &generator{m: m, batch: batch, prompt: prompt, tot: total}
	names := m.Weights.Names()
	n := len(names)
	layers := m.Config.NumHiddenLayers
	dec := m.Decoder
	var err error
	g.prefillExec, err = NewExec(m.backend, func(inputs []*Node) []*Node {
		p := ParamsFromNodes(names, inputs[:n])
		ids, pos, keyValid := inputs[n], inputs[n+1], inputs[n+2]
		gr := ids.Graph()
		caches := make([]*Node, 2*layers)
		store := func(layer int, k, v *Node) (*Node, *Node) {
			pad := func(x *Node) *Node {
				dims := x.Shape().Clone().Dimensions
				dims[2] = total - prompt
				if dims[2] == 0 {
					return x
				}
				return Concatenate([]*Node{x, Zeros(gr, shapes.Make(x.DType(), dims...))}, 2)
			}
			caches[2*layer], caches[2*layer+1] = pad(k), pad(v)
			return caches[2*layer], caches[2*layer+1]
		}
		queryIdx := Iota(gr, shapes.Make(dtypes.Int32, prompt), 0)
		keyIdx := Iota(gr, shapes.Make(dtypes.Int32, total), 0)
		ctx := dec.newAttentionContext(pos, queryIdx, keyIdx, keyValid, nil, store)
		hidden := dec.run(p, ids, ctx)
		last := SliceAxis(hidden, 1, AxisRange(prompt-1, prompt))
		return append([]*Node{Reshape(dec.Head(p, last), batch, -1)}, caches...)
	})
	if err != nil {
		return nil, err
	}
	g.stepEx, err = NewExec(m.backend, func(inputs []*Node) []*Node {
		p := ParamsFromNodes(names, inputs[:n])
		ids, pos, keyValid, slot := inputs[n], inputs[n+1], inputs[n+2], inputs[n+3]
		old := inputs[n+4:]
		gr := ids.Graph()
		keyIdx := Iota(gr, shapes.Make(dtypes.Int32, total), 0)
		at := Reshape(Equal(keyIdx, slot), 1, 1, total, 1)
		caches := make([]*Node, 2*layers)
		store := func(layer int, k, v *Node) (*Node, *Node) {
			put := func(cache, x *Node) *Node {
				return Where(BroadcastToShape(at, cache.Shape()), BroadcastToShape(x, cache.Shape()), cache)
			}
			caches[2*layer], caches[2*layer+1] = put(old[2*layer], k), put(old[2*layer+1], v)
			return caches[2*layer], caches[2*layer+1]
		}
		ctx := dec.newAttentionContext(pos, Reshape(slot, 1), keyIdx, keyValid, nil, store)
		hidden := dec.run(p, ids, ctx)
		return append([]*Node{Reshape(dec.Head(p, hidden), batch, -1)}, caches...)
	})
	if err != nil {
		g.prefillExec.Finalize()
		return nil, err
	}
	return g, nil
}

func (g *generator) finalize() {
	g.prefillExec.Finalize()
	g.stepEx.Finalize()
}

func (g *generator) paramArgs() []any {
	_, args := g.m.paramArgs()
	return args
}

func (g *generator) prefill(ids, pos *tensors.Tensor, keyValid []int32) ([]float32, error) {
	args := append(g.paramArgs(), ids, pos, tensors.FromFlatDataAndDimensions(keyValid, g.batch, g.tot))
	out, err := g.prefillExec.Exec(args...)
	if err != nil {
		return nil, err
	}
	g.cache = out[1:]
	return tensors.CopyFlatData[float32](out[0])
}

func (g *generator) decode(next, pos, keyValid []int32, slot int) ([]float32, error) {
	args := append(g.paramArgs(),
		tensors.FromFlatDataAndDimensions(append([]int32{}, next...), g.batch, 1),
		tensors.FromFlatDataAndDimensions(append([]int32{}, pos...), g.batch, 1),
		tensors.FromFlatDataAndDimensions(append([]int32{}, keyValid...), g.batch, g.tot),
		tensors.FromScalar(int32(slot)))
	for _, c := range g.cache {
		args = append(args, c)
	}
	out, err := g.stepEx.Exec(args...)
	if err != nil {
		return nil, err
	}
	g.cache = out[1:]
	return tensors.CopyFlatData[float32](out[0])
}
