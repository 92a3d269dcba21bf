package handbook

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"handbook/data"
	"handbook/tokenizer"
)

// DataPreview is what a trainer will see of a recipe's data: the resolved mixture and the first
// formatted, tokenized examples with their loss masks.
type DataPreview struct {
	TrainRows int                `json:"train_rows"`
	TestRows  int                `json:"test_rows"`
	Sources   []data.SourceCount `json:"sources"`
	Examples  []PreviewExample   `json:"examples"`
	// Stats counts what tokenizing the previewed examples dropped or cut.
	Stats data.Stats `json:"stats"`
}

// PreviewExample is one tokenized training example. An SFT example is Segments of its text, each
// trained (in the loss) or not; a preference example has Prompt, Chosen and Rejected (the
// completions are trained).
type PreviewExample struct {
	Origin   string           `json:"origin"`
	Tokens   int              `json:"tokens"`
	Segments []PreviewSegment `json:"segments,omitempty"`
	Prompt   string           `json:"prompt,omitempty"`
	Chosen   string           `json:"chosen,omitempty"`
	Rejected string           `json:"rejected,omitempty"`
}

// PreviewSegment is a run of tokens that are all trained or all masked out of the loss.
type PreviewSegment struct {
	Text    string `json:"text"`
	Trained bool   `json:"trained"`
}

// Preview resolves a recipe's data block and tokenizes its first n training rows as the recipe's
// trainer would (SFT formatting and masks, or preference prompt/chosen/rejected for dpo/orpo).
// It needs the tokenizer but not the model's weights.
func Preview(ctx context.Context, r *Recipe, n int, log *slog.Logger) (*DataPreview, error) {
	log = orDiscard(log)
	in, err := r.LoadDatasets(ctx, log)
	if err != nil {
		return nil, err
	}
	p := &DataPreview{TrainRows: in.Mixture.Train.Len(), TestRows: in.Mixture.Test.Len(), Sources: in.Mixture.Sources,
		Examples: []PreviewExample{}}
	if p.Sources == nil {
		p.Sources = []data.SourceCount{}
	}
	head := &data.Dataset{Rows: in.Mixture.Train.Rows[:min(n, in.Mixture.Train.Len())], Origins: in.Mixture.Train.Origins[:min(n, in.Mixture.Train.Len())]}
	if head.Len() == 0 {
		return p, nil
	}
	if r.Task == TaskSFT {
		samples, stats, err := data.Tokenize(ctx, head, in.Tokenize)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.Path, err)
		}
		p.Stats = stats
		for i, s := range samples {
			p.Examples = append(p.Examples, PreviewExample{Origin: originOf(head, i, len(samples)), Tokens: len(s.InputIDs),
				Segments: segments(in.Tokenizer, s)})
		}
		return p, nil
	}
	pairs, stats, err := data.TokenizePreference(ctx, head, in.Tokenize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Path, err)
	}
	p.Stats = stats
	for i, s := range pairs {
		p.Examples = append(p.Examples, PreviewExample{Origin: originOf(head, i, len(pairs)),
			Tokens: len(s.PromptIDs) + max(len(s.ChosenIDs), len(s.RejectedIDs)),
			Prompt: decode(in.Tokenizer, s.PromptIDs), Chosen: decode(in.Tokenizer, s.ChosenIDs), Rejected: decode(in.Tokenizer, s.RejectedIDs)})
	}
	return p, nil
}

// originOf names the row of the i-th sample when tokenization kept every row (otherwise samples
// no longer line up with rows and the origin is left out).
func originOf(d *data.Dataset, i, kept int) string {
	if kept != d.Len() {
		return ""
	}
	return d.Origins[i].String()
}

// segments splits a sample into runs of trained and masked tokens.
func segments(tok *tokenizer.Tokenizer, s data.Sample) []PreviewSegment {
	var out []PreviewSegment
	start := 0
	for i := 1; i <= len(s.InputIDs); i++ {
		if i < len(s.InputIDs) && trained(s, i) == trained(s, start) {
			continue
		}
		out = append(out, PreviewSegment{Text: decode(tok, s.InputIDs[start:i]), Trained: trained(s, start)})
		start = i
	}
	return out
}

func trained(s data.Sample, i int) bool { return s.Labels[i] != data.IgnoreIndex }

func decode(tok *tokenizer.Tokenizer, ids []int32) string {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return tok.Decode(out, false)
}

// String renders the preview for a terminal: trained text between ⟦ and ⟧.
func (p *DataPreview) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "train rows %d, test rows %d\n", p.TrainRows, p.TestRows)
	for _, s := range p.Sources {
		fmt.Fprintf(&b, "  %s", s.ID)
		if s.Config != "" {
			fmt.Fprintf(&b, " (%s)", s.Config)
		}
		fmt.Fprintf(&b, " [%s]: %d of %d rows\n", s.Split, s.Rows, s.Total)
	}
	for i, e := range p.Examples {
		fmt.Fprintf(&b, "\n--- example %d (%s, %d tokens)", i, e.Origin, e.Tokens)
		if e.Segments != nil {
			b.WriteString(": loss on ⟦…⟧\n")
			for _, s := range e.Segments {
				if s.Trained {
					b.WriteString("⟦" + s.Text + "⟧")
				} else {
					b.WriteString(s.Text)
				}
			}
			b.WriteString("\n")
			continue
		}
		fmt.Fprintf(&b, "\nprompt:\n%s\nchosen (trained):\n%s\nrejected (trained):\n%s\n", e.Prompt, e.Chosen, e.Rejected)
	}
	return b.String()
}
