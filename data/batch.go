package data

import (
	"fmt"
	"math/rand/v2"
)

// Batch is a host-side training batch: rows of equal length, ready for the
// model (model.Inputs takes InputIDs, PositionIDs, AttentionMask and
// SegmentIDs as they are).
type Batch struct {
	InputIDs [][]int32
	// Labels are IgnoreIndex on padding and untrained tokens.
	Labels [][]int32
	// AttentionMask is 1 on real tokens, 0 on padding.
	AttentionMask [][]int32
	// PositionIDs restart at 0 for each packed sequence; padding has 0.
	PositionIDs [][]int32
	// SegmentIDs number the sequences of a row 0, 1, …; padding gets the next
	// number, so no real token attends to it.
	SegmentIDs [][]int32
}

// CollateConfig configures Collate and CollatePreference.
type CollateConfig struct {
	// PadID fills padded input ids (TRL: the pad token, else EOS). Labels are
	// masked by position, never by comparing with PadID, so pad == eos does not
	// hide the EOS label (trl#1623).
	PadID int32
	// PaddingFree concatenates the batch's samples into one row (TRL's
	// padding_free); position and segment ids keep the samples apart.
	PaddingFree bool
	// PadToMultipleOf rounds the row length up (0 or 1: pad to the longest).
	PadToMultipleOf int
	// MaxLength and Truncation cut preference rows (CollatePreference only), as
	// TRL's DataCollatorForPreference does.
	MaxLength  int
	Truncation Truncation
}

// Collate builds a batch from samples as TRL's DataCollatorForLanguageModeling
// does: right padding to the longest row (or a multiple), or with PaddingFree
// one concatenated row whose labels are IgnoreIndex at the first token of every
// sequence.
func Collate(samples []Sample, cfg CollateConfig) (Batch, error) {
	if len(samples) == 0 {
		return Batch{}, fmt.Errorf("collate: no samples")
	}
	for i, s := range samples {
		if len(s.InputIDs) != len(s.Labels) {
			return Batch{}, fmt.Errorf("collate: sample %d has %d ids and %d labels", i, len(s.InputIDs), len(s.Labels))
		}
	}
	if cfg.PaddingFree {
		var row Sample
		for _, s := range samples {
			row.InputIDs = append(row.InputIDs, s.InputIDs...)
			row.Labels = append(row.Labels, s.Labels...)
			row.SeqLengths = append(row.SeqLengths, seqLengths(s)...)
		}
		b := collateRows([]Sample{row}, cfg)
		for j, p := range b.PositionIDs[0] {
			if p == 0 {
				b.Labels[0][j] = IgnoreIndex
			}
		}
		return b, nil
	}
	return collateRows(samples, cfg), nil
}

func seqLengths(s Sample) []int {
	if s.SeqLengths != nil {
		return s.SeqLengths
	}
	return []int{len(s.InputIDs)}
}

func padLength(n, multiple int) int {
	if multiple > 1 && n%multiple != 0 {
		n += multiple - n%multiple
	}
	return n
}

func collateRows(rows []Sample, cfg CollateConfig) Batch {
	longest := 0
	for _, r := range rows {
		longest = max(longest, len(r.InputIDs))
	}
	width := padLength(longest, cfg.PadToMultipleOf)
	b := Batch{}
	for _, r := range rows {
		ids := make([]int32, width)
		labels := make([]int32, width)
		mask := make([]int32, width)
		pos := make([]int32, width)
		seg := make([]int32, width)
		copy(ids, r.InputIDs)
		copy(labels, r.Labels)
		j := 0
		lens := seqLengths(r)
		for s, n := range lens {
			for k := 0; k < n; k++ {
				mask[j], pos[j], seg[j] = 1, int32(k), int32(s)
				j++
			}
		}
		for ; j < width; j++ {
			ids[j], labels[j], seg[j] = cfg.PadID, IgnoreIndex, int32(len(lens))
		}
		b.InputIDs = append(b.InputIDs, ids)
		b.Labels = append(b.Labels, labels)
		b.AttentionMask = append(b.AttentionMask, mask)
		b.PositionIDs = append(b.PositionIDs, pos)
		b.SegmentIDs = append(b.SegmentIDs, seg)
	}
	return b
}

// PreferenceBatch is TRL's preference layout: rows 0…n-1 are prompt+chosen,
// rows n…2n-1 prompt+rejected for the same pairs.
type PreferenceBatch struct {
	Batch
	// CompletionMask is 1 on completion tokens (Labels hold them, IgnoreIndex
	// elsewhere).
	CompletionMask [][]int32
	// Pairs is n, the number of pairs.
	Pairs int
}

// CollatePreference builds a preference batch as TRL's
// DataCollatorForPreference does: prompt+chosen rows then prompt+rejected
// rows, each cut to MaxLength (KeepStart or KeepEnd), right padded.
func CollatePreference(pairs []PreferenceSample, cfg CollateConfig) (PreferenceBatch, error) {
	if len(pairs) == 0 {
		return PreferenceBatch{}, fmt.Errorf("collate: no preference pairs")
	}
	var rows []Sample
	var masks [][]int32
	for _, side := range []func(PreferenceSample) []int32{
		func(p PreferenceSample) []int32 { return p.ChosenIDs },
		func(p PreferenceSample) []int32 { return p.RejectedIDs },
	} {
		for _, p := range pairs {
			comp := side(p)
			ids := append(append(make([]int32, 0, len(p.PromptIDs)+len(comp)), p.PromptIDs...), comp...)
			mask := make([]int32, len(ids))
			for i := len(p.PromptIDs); i < len(ids); i++ {
				mask[i] = 1
			}
			if cfg.MaxLength > 0 {
				ids = truncate(ids, cfg.MaxLength, cfg.Truncation)
				mask = truncate(mask, cfg.MaxLength, cfg.Truncation)
			}
			labels := make([]int32, len(ids))
			for i := range ids {
				labels[i] = ids[i]
				if mask[i] == 0 {
					labels[i] = IgnoreIndex
				}
			}
			rows = append(rows, Sample{InputIDs: ids, Labels: labels})
			masks = append(masks, mask)
		}
	}
	b := collateRows(rows, cfg)
	cm := make([][]int32, len(masks))
	for i, m := range masks {
		cm[i] = make([]int32, len(b.InputIDs[i]))
		copy(cm[i], m)
	}
	return PreferenceBatch{Batch: b, CompletionMask: cm, Pairs: len(pairs)}, nil
}

// Sampler orders examples into batches, deterministically for a seed and
// epoch, so a run resumed at (epoch, step) sees exactly the batches it had
// not seen — none replayed, none skipped.
type Sampler struct {
	// N is the number of examples, BatchSize the examples per batch.
	N, BatchSize int
	// Seed and Shuffle: each epoch is a fresh permutation of Seed and the
	// epoch number (Shuffle false keeps dataset order).
	Seed    uint64
	Shuffle bool
	// DropLast drops a final partial batch.
	DropLast bool
	// EvenBatches completes a final partial batch with the epoch's first examples, so every batch
	// has BatchSize examples: accelerate's even_batches, which a multi-device run needs so that
	// every device gets the same number of rows.
	EvenBatches bool
}

// Steps returns the number of batches per epoch.
func (s Sampler) Steps() int {
	if s.BatchSize <= 0 {
		return 0
	}
	if s.DropLast {
		return s.N / s.BatchSize
	}
	return (s.N + s.BatchSize - 1) / s.BatchSize
}

// Order returns the example order of an epoch.
func (s Sampler) Order(epoch int) []int {
	if !s.Shuffle {
		out := make([]int, s.N)
		for i := range out {
			out[i] = i
		}
		return out
	}
	r := rand.New(rand.NewPCG(s.Seed, uint64(epoch)+1))
	return r.Perm(s.N)
}

// Batch returns the example indices of batch step of epoch.
func (s Sampler) Batch(epoch, step int) ([]int, error) {
	if step < 0 || step >= s.Steps() {
		return nil, fmt.Errorf("sampler: step %d outside epoch of %d steps", step, s.Steps())
	}
	order := s.Order(epoch)
	start := step * s.BatchSize
	if !s.EvenBatches || start+s.BatchSize <= s.N {
		return order[start:min(start+s.BatchSize, s.N)], nil
	}
	idx := make([]int, s.BatchSize)
	for i := range idx {
		idx[i] = order[(start+i)%s.N]
	}
	return idx, nil
}
