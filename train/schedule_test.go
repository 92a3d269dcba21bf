package train

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSchedulesMatchTransformers replays get_scheduler's multipliers (tools/oracle/schedule_golden.py).
func TestSchedulesMatchTransformers(t *testing.T) {
	data, err := os.ReadFile("testdata/schedules.json")
	require.NoError(t, err)
	var cases []struct {
		Name      string    `json:"name"`
		Warmup    int       `json:"warmup"`
		Total     int       `json:"total"`
		MinLRRate float64   `json:"min_lr_rate"`
		Factors   []float64 `json:"factors"`
	}
	require.NoError(t, json.Unmarshal(data, &cases))
	require.Len(t, cases, 9)
	for _, c := range cases {
		s, err := NewSchedule(c.Name, c.Warmup, c.Total, c.MinLRRate)
		require.NoError(t, err)
		for k, want := range c.Factors {
			assert.InDelta(t, want, s.Factor(k), 1e-12, "%s warmup %d total %d step %d", c.Name, c.Warmup, c.Total, k)
		}
	}
}

func TestScheduleErrorsAndWarmup(t *testing.T) {
	_, err := NewSchedule("polynomial_typo", 0, 10, 0)
	assert.ErrorContains(t, err, `lr_scheduler_type "polynomial_typo" is not supported`)
	_, err = NewSchedule("linear", 0, 0, 0)
	assert.Error(t, err)
	assert.Equal(t, 3, StepCount(0.1, 21), "fractions round up like transformers")
	assert.Equal(t, 5, StepCount(5, 100))
	assert.Equal(t, 0, StepCount(0, 100))
}
