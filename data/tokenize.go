package data

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"handbook/tokenizer"
)

// IgnoreIndex marks a label excluded from the loss (model.IgnoreIndex).
const IgnoreIndex = -100

// Truncation says which end of an over-long sequence is kept (TRL's
// truncation_mode).
type Truncation string

const (
	// KeepStart keeps the first max_length tokens (TRL's default).
	KeepStart Truncation = "keep_start"
	// KeepEnd keeps the last max_length tokens.
	KeepEnd Truncation = "keep_end"
)

// TokenizeConfig is how examples become token ids, following TRL's SFTTrainer
// and DPOTrainer preparation.
type TokenizeConfig struct {
	Tokenizer *tokenizer.Tokenizer
	// Template renders conversational data; nil uses the tokenizer's own
	// (tokenizer.DefaultChatTemplate when it has none).
	Template *tokenizer.ChatTemplate
	// Parse picks the text column.
	Parse ParseOptions
	// EOSToken overrides the tokenizer's EOS text appended to non-conversational
	// text and completions (TRL's eos_token).
	EOSToken string
	// MaxLength truncates each sample (0: no limit). For SFT with packing leave
	// it 0 here: Pack cuts to its sequence length. For preference data it is
	// applied by CollatePreference, as TRL's collator does; samples whose prompt
	// alone fills it are dropped here under KeepStart.
	MaxLength int
	// Truncation is KeepStart (default) or KeepEnd.
	Truncation Truncation
	// AssistantOnlyLoss trains only on assistant tokens of conversations (the
	// template's {% generation %} blocks).
	AssistantOnlyLoss bool
	// CompletionOnlyLoss trains only on the completion of prompt-completion
	// data; nil means true (TRL's default), false trains on the prompt too.
	CompletionOnlyLoss *bool
	// MaxPromptLength keeps the last MaxPromptLength prompt tokens of
	// preference samples, MaxCompletionLength the first tokens of chosen and
	// rejected (0: no limit; the handbook's DPO recipes set max_prompt_length).
	MaxPromptLength, MaxCompletionLength int
	// NumProc is the number of parallel workers (dataset_num_proc; 0: all CPUs).
	NumProc int
	// Logger receives the counts of dropped samples; nil discards.
	Logger *slog.Logger
}

// Sample is one tokenized SFT sequence (or, after Pack, several).
type Sample struct {
	InputIDs []int32
	// Labels equal InputIDs where the token is trained and IgnoreIndex elsewhere.
	Labels []int32
	// SeqLengths are the lengths of the sequences packed in this sample (nil for
	// one sequence); position ids restart and segments change at each.
	SeqLengths []int
}

// PreferenceSample is one tokenized preference pair in TRL's layout: the
// shared prompt ids and the ids of each completion (EOS included).
type PreferenceSample struct {
	PromptIDs, ChosenIDs, RejectedIDs []int32
	// RefLogps are the row's reference log-probs of chosen and rejected (the ref_chosen_logps and
	// ref_rejected_logps columns); nil when the dataset has none.
	RefLogps *[2]float64
}

// Stats counts what tokenization did. Dropped samples are never silent: they
// are counted here, logged, and the first few origins kept.
type Stats struct {
	Rows int `json:"rows"`
	// Kept is the number of samples returned.
	Kept int `json:"kept"`
	// Truncated counts samples cut to MaxLength (or the prompt/completion limits).
	Truncated int `json:"truncated"`
	// NoTrainable counts samples dropped because no token was left to train on
	// (an empty assistant mask, a prompt filling max_length, an empty completion).
	NoTrainable int `json:"no_trainable"`
	// PromptMismatch counts samples whose tokenized prompt was not a prefix of
	// the tokenized prompt+completion (the completion then starts where they
	// diverge, as in TRL).
	PromptMismatch int `json:"prompt_mismatch"`
	// NoTrainableExamples are the origins of the first dropped samples.
	NoTrainableExamples []Origin `json:"-"`
}

func (c TokenizeConfig) template() (*tokenizer.ChatTemplate, error) {
	if c.Template != nil {
		return c.Template, nil
	}
	return c.Tokenizer.ChatTemplate("")
}

func (c TokenizeConfig) eos() (string, error) {
	if c.EOSToken != "" {
		return c.EOSToken, nil
	}
	if c.Tokenizer.EOS.Text == "" {
		return "", fmt.Errorf("tokenizer has no eos_token to end non-conversational samples (set EOSToken)")
	}
	return c.Tokenizer.EOS.Text, nil
}

func (c TokenizeConfig) completionOnly() bool {
	return c.CompletionOnlyLoss == nil || *c.CompletionOnlyLoss
}

// prepared is what every worker shares.
type prepared struct {
	ctx    context.Context // stops chat template rendering too
	cfg    TokenizeConfig
	tmpl   *tokenizer.ChatTemplate
	eos    string
	format Format
}

func prepare(ctx context.Context, ds *Dataset, cfg TokenizeConfig, want func(Format) bool) (*prepared, error) {
	if cfg.Tokenizer == nil {
		return nil, fmt.Errorf("tokenize: no tokenizer")
	}
	if cfg.Truncation != "" && cfg.Truncation != KeepStart && cfg.Truncation != KeepEnd {
		return nil, fmt.Errorf("tokenize: truncation %q: want keep_start or keep_end", cfg.Truncation)
	}
	if ds.Len() == 0 {
		return nil, fmt.Errorf("tokenize: empty dataset")
	}
	format, err := DetectFormat(ds.Rows[0], cfg.Parse)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ds.Origins[0], err)
	}
	if !want(format) {
		return nil, fmt.Errorf("%s: %v data does not fit this trainer", ds.Origins[0], format)
	}
	p := &prepared{ctx: ctx, cfg: cfg, format: format}
	if p.tmpl, err = cfg.template(); err != nil {
		return nil, err
	}
	if p.eos, err = cfg.eos(); err != nil {
		return nil, err
	}
	return p, nil
}

// parallel runs fn(i) for i in [0, n) on NumProc workers; the first error
// (lowest index) wins.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	workers = min(workers, max(n, 1))
	var next atomic.Int64
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if i%256 == 0 {
					if err := ctx.Err(); err != nil {
						errs[w] = err
						return
					}
				}
				if err := fn(i); err != nil {
					errs[w] = err
					next.Store(int64(n)) // stop the others early
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Tokenize turns SFT data (text, messages or prompt-completion) into samples,
// as TRL's SFTTrainer prepares them: EOS appended to non-conversational text
// and completions unless already there; conversations rendered by the chat
// template (which closes turns itself); labels masked to the completion
// (prompt-completion, unless CompletionOnlyLoss is false) and to assistant
// tokens (AssistantOnlyLoss); truncation to MaxLength. Samples left with no
// trainable token are dropped and counted in Stats.
func Tokenize(ctx context.Context, ds *Dataset, cfg TokenizeConfig) ([]Sample, Stats, error) {
	return tokenizeRows(ctx, ds, cfg, "sft", func(f Format) bool { return f != FormatPreference },
		func(p *prepared, ex Example) (rowResult[Sample], error) {
			s, mismatch, err := p.sft(ex)
			if err != nil {
				return rowResult[Sample]{}, err
			}
			r := rowResult[Sample]{mismatch: mismatch}
			if cfg.MaxLength > 0 && len(s.InputIDs) > cfg.MaxLength {
				r.truncated = true
				s.InputIDs = truncate(s.InputIDs, cfg.MaxLength, cfg.Truncation)
				s.Labels = truncate(s.Labels, cfg.MaxLength, cfg.Truncation)
			}
			r.drop = !slices.ContainsFunc(s.Labels, func(l int32) bool { return l != IgnoreIndex })
			r.sample = s
			return r, nil
		})
}

// rowResult is one row tokenized: the sample, and what collect counts about it.
type rowResult[T any] struct {
	sample              T
	mismatch, truncated bool
	drop                bool // no trainable token left
}

// tokenizeRows parses and tokenizes every row of ds in parallel with one (rows of a format accept
// rejects are an error), then drops and counts as collect does.
func tokenizeRows[T any](ctx context.Context, ds *Dataset, cfg TokenizeConfig, what string, accept func(Format) bool,
	one func(p *prepared, ex Example) (rowResult[T], error)) ([]T, Stats, error) {
	p, err := prepare(ctx, ds, cfg, accept)
	if err != nil {
		return nil, Stats{}, err
	}
	rows := make([]rowResult[T], ds.Len())
	err = parallel(ctx, len(rows), cfg.NumProc, func(i int) error {
		ex, err := ParseRow(ds.Rows[i], p.format, cfg.Parse)
		if err != nil {
			return fmt.Errorf("%s: %w", ds.Origins[i], err)
		}
		if rows[i], err = one(p, ex); err != nil {
			return fmt.Errorf("%s: %w", ds.Origins[i], err)
		}
		return nil
	})
	if err != nil {
		return nil, Stats{}, err
	}
	return collect(rows, ds, cfg, what)
}

func collect[T any](rows []rowResult[T], ds *Dataset, cfg TokenizeConfig, what string) ([]T, Stats, error) {
	st := Stats{Rows: len(rows)}
	kept := make([]T, 0, len(rows))
	for i, r := range rows {
		if r.truncated {
			st.Truncated++
		}
		if r.mismatch {
			st.PromptMismatch++
		}
		if r.drop {
			st.NoTrainable++
			if len(st.NoTrainableExamples) < 5 {
				st.NoTrainableExamples = append(st.NoTrainableExamples, ds.Origins[i])
			}
			continue
		}
		kept = append(kept, r.sample)
	}
	st.Kept = len(kept)
	log := orDiscard(cfg.Logger)
	log.Info("tokenized "+what+" data", "rows", st.Rows, "kept", st.Kept, "truncated", st.Truncated)
	if st.NoTrainable > 0 {
		log.Warn("dropped samples with no trainable token", "count", st.NoTrainable, "first", fmt.Sprint(st.NoTrainableExamples))
	}
	if st.PromptMismatch > 0 {
		log.Warn("tokenized prompt is not a prefix of prompt+completion; the completion starts where they diverge", "count", st.PromptMismatch)
	}
	if st.Kept == 0 {
		hint := ""
		if cfg.AssistantOnlyLoss {
			hint = " (assistant_only_loss needs a chat template with {% generation %} blocks)"
		}
		return nil, st, fmt.Errorf("tokenize: none of the %d samples has a trainable token%s; first: %v", st.Rows, hint, st.NoTrainableExamples)
	}
	return kept, st, nil
}

func truncate(ids []int32, n int, mode Truncation) []int32 {
	if len(ids) <= n {
		return ids
	}
	if mode == KeepEnd {
		return ids[len(ids)-n:]
	}
	return ids[:n]
}

func (p *prepared) renderOptions(ex Example, gen bool) tokenizer.RenderOptions {
	return tokenizer.RenderOptions{Context: p.ctx, AddGenerationPrompt: gen, Tools: ex.Tools, Kwargs: ex.TemplateKwargs}
}

func (p *prepared) encodeChat(msgs []tokenizer.Message, opts tokenizer.RenderOptions) ([]int32, []int, error) {
	ids, mask, err := p.cfg.Tokenizer.EncodeChat(p.tmpl, msgs, opts)
	if err != nil {
		return nil, nil, err
	}
	return toInt32(ids), mask, nil
}

func (p *prepared) encode(text string) ([]int32, error) {
	ids, err := p.cfg.Tokenizer.Encode(text, true)
	if err != nil {
		return nil, err
	}
	return toInt32(ids), nil
}

func (p *prepared) withEOS(s string) string {
	if strings.HasSuffix(s, p.eos) {
		return s
	}
	return s + p.eos
}

// sft tokenizes one example; mismatch reports a prompt that is not a prefix.
func (p *prepared) sft(ex Example) (s Sample, mismatch bool, err error) {
	if p.cfg.AssistantOnlyLoss && !ex.Conversational() {
		return Sample{}, false, fmt.Errorf("assistant_only_loss needs conversational data, got %v", ex.Format)
	}
	var ids []int32
	var assistant []int
	completionStart := 0
	switch ex.Format {
	case FormatText:
		ids, err = p.encode(p.withEOS(ex.Text))
	case FormatMessages:
		ids, assistant, err = p.encodeChat(ex.Messages, p.renderOptions(ex, false))
	case FormatPromptCompletion:
		var promptIDs []int32
		if ex.Prompt.Conversational() {
			if promptIDs, _, err = p.encodeChat(ex.Prompt.Messages, p.renderOptions(ex, true)); err != nil {
				return Sample{}, false, fmt.Errorf("prompt: %w", err)
			}
			all := append(slices.Clone(ex.Prompt.Messages), ex.Completion.Messages...)
			ids, assistant, err = p.encodeChat(all, p.renderOptions(ex, false))
		} else {
			if promptIDs, err = p.encode(ex.Prompt.Text); err != nil {
				return Sample{}, false, fmt.Errorf("prompt: %w", err)
			}
			ids, err = p.encode(ex.Prompt.Text + p.withEOS(ex.Completion.Text))
		}
		completionStart = commonPrefix(promptIDs, ids)
		mismatch = completionStart < len(promptIDs)
		if !p.cfg.completionOnly() {
			completionStart = 0
		}
	default:
		return Sample{}, false, fmt.Errorf("%v data is not SFT data", ex.Format)
	}
	if err != nil {
		return Sample{}, false, err
	}
	labels := slices.Clone(ids)
	for i := range labels {
		if i < completionStart || (p.cfg.AssistantOnlyLoss && assistant[i] == 0) {
			labels[i] = IgnoreIndex
		}
	}
	return Sample{InputIDs: ids, Labels: labels}, mismatch, nil
}

func commonPrefix(a, b []int32) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func toInt32(ids []int) []int32 {
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out
}

// TokenizePreference turns preference data into prompt/chosen/rejected ids as
// TRL's DPOTrainer prepares them: the shared prompt extracted when not given;
// EOS appended to non-conversational completions; conversations rendered as
// prompt (with the generation prompt), prompt+chosen and prompt+rejected, the
// prompt ending where the three agree. MaxPromptLength keeps the prompt's end,
// MaxCompletionLength the completions' start. Pairs with an empty completion,
// or (KeepStart with MaxLength) whose prompt fills MaxLength, are dropped and
// counted.
func TokenizePreference(ctx context.Context, ds *Dataset, cfg TokenizeConfig) ([]PreferenceSample, Stats, error) {
	return tokenizeRows(ctx, ds, cfg, "preference", func(f Format) bool { return f == FormatPreference },
		func(p *prepared, ex Example) (rowResult[PreferenceSample], error) {
			s, mismatch, err := p.preference(ex)
			if err != nil {
				return rowResult[PreferenceSample]{}, err
			}
			r := rowResult[PreferenceSample]{mismatch: mismatch}
			if m := cfg.MaxPromptLength; m > 0 && len(s.PromptIDs) > m {
				s.PromptIDs, r.truncated = s.PromptIDs[len(s.PromptIDs)-m:], true
			}
			if m := cfg.MaxCompletionLength; m > 0 {
				if len(s.ChosenIDs) > m {
					s.ChosenIDs, r.truncated = s.ChosenIDs[:m], true
				}
				if len(s.RejectedIDs) > m {
					s.RejectedIDs, r.truncated = s.RejectedIDs[:m], true
				}
			}
			if m := cfg.MaxLength; m > 0 && len(s.PromptIDs)+max(len(s.ChosenIDs), len(s.RejectedIDs)) > m {
				r.truncated = true
			}
			r.drop = len(s.ChosenIDs) == 0 || len(s.RejectedIDs) == 0 ||
				(cfg.MaxLength > 0 && cfg.Truncation != KeepEnd && len(s.PromptIDs) >= cfg.MaxLength)
			r.sample = s
			return r, nil
		})
}

func (p *prepared) preference(ex Example) (PreferenceSample, bool, error) {
	var prompt, chosen, rejected []int32
	var err error
	if ex.Chosen.Conversational() {
		if prompt, _, err = p.encodeChat(ex.Prompt.Messages, p.renderOptions(ex, true)); err != nil {
			return PreferenceSample{}, false, fmt.Errorf("prompt: %w", err)
		}
		if chosen, _, err = p.encodeChat(append(slices.Clone(ex.Prompt.Messages), ex.Chosen.Messages...), p.renderOptions(ex, false)); err != nil {
			return PreferenceSample{}, false, fmt.Errorf("chosen: %w", err)
		}
		if rejected, _, err = p.encodeChat(append(slices.Clone(ex.Prompt.Messages), ex.Rejected.Messages...), p.renderOptions(ex, false)); err != nil {
			return PreferenceSample{}, false, fmt.Errorf("rejected: %w", err)
		}
	} else {
		if prompt, err = p.encode(ex.Prompt.Text); err != nil {
			return PreferenceSample{}, false, fmt.Errorf("prompt: %w", err)
		}
		if chosen, err = p.encode(ex.Prompt.Text + p.withEOS(ex.Chosen.Text)); err != nil {
			return PreferenceSample{}, false, fmt.Errorf("chosen: %w", err)
		}
		if rejected, err = p.encode(ex.Prompt.Text + p.withEOS(ex.Rejected.Text)); err != nil {
			return PreferenceSample{}, false, fmt.Errorf("rejected: %w", err)
		}
	}
	n := min(commonPrefix(prompt, chosen), commonPrefix(prompt, rejected))
	return PreferenceSample{PromptIDs: prompt[:n], ChosenIDs: chosen[n:], RejectedIDs: rejected[n:], RefLogps: ex.RefLogps}, n < len(prompt), nil
}
