package train

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Schedule is a learning-rate multiplier by optimizer step, transformers' get_scheduler lambdas.
// Factor(k) is the multiplier in force after k optimizer steps: step k+1 uses Factor(k)·lr, and
// transformers logs Factor(k)·lr as the learning_rate of step k.
type Schedule struct {
	Name        string
	WarmupSteps int
	TotalSteps  int
	// MinLRRate is cosine_with_min_lr's floor as a fraction of the peak learning rate.
	MinLRRate float64
	// Timescale is inverse_sqrt's; 0 means transformers' default (warmup steps, else 10000).
	Timescale int
}

var scheduleNames = []string{"constant", "constant_with_warmup", "cosine", "cosine_with_min_lr", "inverse_sqrt", "linear"}

// NewSchedule validates a schedule name (lr_scheduler_type) and its arguments.
func NewSchedule(name string, warmupSteps, totalSteps int, minLRRate float64) (Schedule, error) {
	s := Schedule{Name: name, WarmupSteps: warmupSteps, TotalSteps: totalSteps, MinLRRate: minLRRate}
	if !slices.Contains(scheduleNames, name) {
		return s, fmt.Errorf("lr_scheduler_type %q is not supported (supported: %s)", name, strings.Join(scheduleNames, ", "))
	}
	if warmupSteps < 0 || totalSteps <= 0 {
		return s, fmt.Errorf("schedule %s: warmup steps %d and total steps %d must be ≥ 0 and > 0", name, warmupSteps, totalSteps)
	}
	if minLRRate < 0 || minLRRate > 1 {
		return s, fmt.Errorf("schedule %s: min_lr_rate %g must be within [0, 1]", name, minLRRate)
	}
	return s, nil
}

// StepCount resolves a step interval given the way transformers accepts it (warmup_steps,
// save_steps, eval_steps, logging_steps): v ≥ 1 is a count, v in (0, 1) a fraction of totalSteps
// rounded up, anything else 0. The legacy warmup_ratio is the fractional form.
func StepCount(v float64, totalSteps int) int {
	switch {
	case v >= 1:
		return int(v)
	case v > 0:
		return int(math.Ceil(float64(totalSteps) * v))
	}
	return 0
}

// Factor returns the learning-rate multiplier after step optimizer steps.
func (s Schedule) Factor(step int) float64 {
	warm := s.WarmupSteps
	if s.Name != "constant" && step < warm {
		return float64(step) / float64(max(1, warm))
	}
	progress := float64(step-warm) / float64(max(1, s.TotalSteps-warm))
	switch s.Name {
	case "linear":
		return math.Max(0, float64(s.TotalSteps-step)/float64(max(1, s.TotalSteps-warm)))
	case "cosine":
		return math.Max(0, 0.5*(1+math.Cos(math.Pi*progress)))
	case "cosine_with_min_lr":
		f := 0.5 * (1 + math.Cos(math.Pi*progress))
		return math.Max(0, f*(1-s.MinLRRate)+s.MinLRRate)
	case "inverse_sqrt":
		timescale := s.Timescale
		if timescale == 0 {
			timescale = warm
			if timescale == 0 {
				timescale = 10_000
			}
		}
		shift := timescale - warm
		return 1 / math.Sqrt(float64(step+shift)/float64(timescale))
	}
	return 1 // constant, constant_with_warmup after warmup
}
