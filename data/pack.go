package data

import (
	"fmt"
	"slices"
	"sort"
)

// PackStrategy is how Pack fills fixed-length rows (TRL's packing_strategy).
type PackStrategy string

const (
	// PackBFD is best-fit decreasing: samples keep their boundaries, longer
	// ones are cut to the sequence length (the overflow is dropped and counted).
	PackBFD PackStrategy = "bfd"
	// PackBFDSplit is best-fit decreasing with over-long samples split into
	// sequence-length pieces instead of cut.
	PackBFDSplit PackStrategy = "bfd_split"
	// PackWrapped concatenates everything and cuts every SeqLength tokens,
	// across sample boundaries; rows are one segment each.
	PackWrapped PackStrategy = "wrapped"
)

// PackConfig configures Pack.
type PackConfig struct {
	// SeqLength is the length of a packed row (TRL: max_length).
	SeqLength int
	// Strategy defaults to PackBFD.
	Strategy PackStrategy
	// ChunkSize is how many samples are packed together; TRL packs inside
	// `datasets.map(batched=True)` batches of 1000, the default here.
	ChunkSize int
}

// PackStats counts what packing did.
type PackStats struct {
	Samples, Rows int
	// TruncatedTokens were cut from over-long samples by PackBFD.
	TruncatedTokens int
	// Empty samples were skipped.
	Empty int
}

// Pack packs samples into rows of at most SeqLength tokens exactly as TRL's
// pack_dataset does (row order, sample order inside rows, per-chunk packing).
// Packed samples carry SeqLengths, from which batches get position ids that
// restart per sample and segment ids that keep samples apart.
func Pack(samples []Sample, cfg PackConfig) ([]Sample, PackStats, error) {
	if cfg.SeqLength <= 0 {
		return nil, PackStats{}, fmt.Errorf("pack: sequence length %d must be positive", cfg.SeqLength)
	}
	chunk := cfg.ChunkSize
	if chunk <= 0 {
		chunk = 1000
	}
	st := PackStats{Samples: len(samples)}
	var out []Sample
	for start := 0; start < len(samples); start += chunk {
		part := samples[start:min(start+chunk, len(samples))]
		switch cfg.Strategy {
		case PackBFD, "":
			out = append(out, packBFD(part, cfg.SeqLength, false, &st)...)
		case PackBFDSplit:
			out = append(out, packBFD(part, cfg.SeqLength, true, &st)...)
		case PackWrapped:
			out = append(out, packWrapped(part, cfg.SeqLength)...)
		default:
			return nil, PackStats{}, fmt.Errorf("pack: unknown strategy %q (want bfd, bfd_split or wrapped)", cfg.Strategy)
		}
	}
	st.Rows = len(out)
	return out, st, nil
}

func packBFD(samples []Sample, seqLen int, split bool, st *PackStats) []Sample {
	var seqs []Sample
	for _, s := range samples {
		if len(s.InputIDs) == 0 {
			st.Empty++
			continue
		}
		switch {
		case len(s.InputIDs) <= seqLen:
			seqs = append(seqs, s)
		case split:
			for off := 0; off < len(s.InputIDs); off += seqLen {
				end := min(off+seqLen, len(s.InputIDs))
				seqs = append(seqs, Sample{InputIDs: s.InputIDs[off:end], Labels: s.Labels[off:end]})
			}
		default:
			st.TruncatedTokens += len(s.InputIDs) - seqLen
			seqs = append(seqs, Sample{InputIDs: s.InputIDs[:seqLen], Labels: s.Labels[:seqLen]})
		}
	}
	order := make([]int, len(seqs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(seqs[order[a]].InputIDs) > len(seqs[order[b]].InputIDs) })

	type bin struct {
		ids    []int
		length int
	}
	tree := newSegmentTree(seqLen)
	tree.add(seqLen)
	spaceToBins := map[int][]*bin{}
	var bins []*bin
	for _, idx := range order {
		length := len(seqs[idx].InputIDs)
		space := tree.search(length)
		var b *bin
		if space < seqLen {
			b = spaceToBins[space][0]
			spaceToBins[space] = spaceToBins[space][1:]
		} else {
			b = &bin{}
			bins = append(bins, b)
		}
		b.ids = append(b.ids, idx)
		b.length += length
		if space < seqLen && len(spaceToBins[space]) == 0 {
			tree.remove(space)
		}
		space -= length
		spaceToBins[space] = append(spaceToBins[space], b)
		if space > 0 {
			tree.add(space)
		}
	}
	out := make([]Sample, len(bins))
	for i, b := range bins {
		row := Sample{InputIDs: make([]int32, 0, b.length), Labels: make([]int32, 0, b.length)}
		for _, idx := range b.ids {
			row.InputIDs = append(row.InputIDs, seqs[idx].InputIDs...)
			row.Labels = append(row.Labels, seqs[idx].Labels...)
			row.SeqLengths = append(row.SeqLengths, len(seqs[idx].InputIDs))
		}
		out[i] = row
	}
	return out
}

func packWrapped(samples []Sample, seqLen int) []Sample {
	var ids, labels []int32
	for _, s := range samples {
		ids = append(ids, s.InputIDs...)
		labels = append(labels, s.Labels...)
	}
	var out []Sample
	for off := 0; off < len(ids); off += seqLen {
		end := min(off+seqLen, len(ids))
		out = append(out, Sample{InputIDs: slices.Clone(ids[off:end]), Labels: slices.Clone(labels[off:end])})
	}
	return out
}

// segmentTree finds the smallest free space ≥ a length among open bins, as
// TRL's _SegmentTree does (leaves indexed by space value).
type segmentTree struct {
	size int
	tree []int
}

func newSegmentTree(maxval int) *segmentTree {
	size := 1
	for size < maxval {
		size <<= 1
	}
	return &segmentTree{size: size, tree: make([]int, 2*size)}
}

func (t *segmentTree) set(val, to int) {
	i := t.size + val - 1
	t.tree[i] = to
	for i > 1 {
		i >>= 1
		t.tree[i] = max(t.tree[2*i], t.tree[2*i+1])
	}
}

func (t *segmentTree) add(val int)    { t.set(val, val) }
func (t *segmentTree) remove(val int) { t.set(val, 0) }

func (t *segmentTree) search(val int) int {
	i := 1
	for i < t.size {
		if t.tree[2*i] >= val {
			i = 2 * i
		} else {
			i = 2*i + 1
		}
	}
	return t.tree[i]
}
