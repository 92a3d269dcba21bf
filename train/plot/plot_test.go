package plot

import (
	"bytes"
	"image"
	"image/png"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lossCurves is a 100-step training loss with a NaN at step 50 and an eval loss every 20 steps.
func lossCurves() []Series {
	train := Series{Name: "train/loss"}
	for step := int64(1); step <= 100; step++ {
		v := 2.5*math.Exp(-float64(step)/30) + 0.4 + 0.05*math.Sin(float64(step))
		if step == 50 {
			v = math.NaN()
		}
		train.Points = append(train.Points, Point{step, v})
	}
	eval := Series{Name: "eval/loss"}
	for step := int64(20); step <= 100; step += 20 {
		eval.Points = append(eval.Points, Point{step, 2.4*math.Exp(-float64(step)/35) + 0.55})
	}
	return []Series{train, eval}
}

func TestWritePNG(t *testing.T) {
	tests := []struct {
		name  string
		chart Chart
	}{
		{"loss curves", Chart{Title: "tiny SFT", YLabel: "loss", Series: lossCurves()}},
		{"one point", Chart{Width: 400, Height: 300, Series: []Series{{"eval/loss", []Point{{5, 1.5}}}}}},
		{"flat zero", Chart{Series: []Series{{"lr", []Point{{0, 0}, {10, 0}}}}}},
		{"tiny values", Chart{Series: []Series{{"lr", []Point{{0, 2e-5}, {10, 1e-6}, {20, 0}}}}}},
		{"huge values and steps", Chart{Series: []Series{{"x", []Point{{0, -3e9}, {1 << 40, 7e9}}}}}},
		{"non-ASCII name", Chart{Series: []Series{{"perte/λ", []Point{{1, 1}, {2, 2}}}, {"empty", nil}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			require.NoError(t, WritePNG(&buf, tc.chart))
			img, err := png.Decode(&buf)
			require.NoError(t, err)
			want := image.Rect(0, 0, defaultWidth, defaultHeight)
			if tc.chart.Width != 0 {
				want = image.Rect(0, 0, tc.chart.Width, tc.chart.Height)
			}
			assert.Equal(t, want, img.Bounds())
			// The first series' colour is on the canvas.
			found := false
			for y := 0; y < want.Dy() && !found; y++ {
				for x := 0; x < want.Dx() && !found; x++ {
					r, g, b, _ := img.At(x, y).RGBA()
					found = r>>8 == uint32(palette[0].R) && g>>8 == uint32(palette[0].G) && b>>8 == uint32(palette[0].B)
				}
			}
			assert.True(t, found, "no pixel in the first series' colour")
		})
	}
}

func TestWritePNGErrors(t *testing.T) {
	tests := []struct {
		name  string
		chart Chart
		want  string
	}{
		{"no series", Chart{}, "no finite points"},
		{"only NaN", Chart{Series: []Series{{"loss", []Point{{1, math.NaN()}, {2, math.Inf(1)}}}}}, "no finite points"},
		{"too small", Chart{Width: 100, Height: 100, Series: lossCurves()}, "below the minimum"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.ErrorContains(t, WritePNG(&bytes.Buffer{}, tc.chart), tc.want)
		})
	}
}

func TestSavePNG(t *testing.T) {
	dir := os.Getenv("PLOT_OUT_DIR") // set it to look at the picture
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "loss.png")
	require.NoError(t, SavePNG(path, Chart{Title: "tiny SFT", YLabel: "loss", Series: lossCurves()}))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	_, err = png.Decode(f)
	require.NoError(t, err)

	assert.ErrorContains(t, SavePNG(filepath.Join(dir, "missing", "loss.png"), Chart{Series: lossCurves()}), "plot:")
	assert.ErrorContains(t, SavePNG(filepath.Join(dir, "empty.png"), Chart{}), "no finite points")
}

func TestNiceTicks(t *testing.T) {
	tests := []struct {
		name    string
		lo, hi  float64
		n       int
		integer bool
		want    ticks
	}{
		{"unit", 0, 1, 5, false, ticks{0, 1, 0.2, []float64{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}}},
		{"loss", 0.43, 2.9, 6, false, ticks{0, 3, 0.5, []float64{0, 0.5, 1, 1.5, 2, 2.5, 3}}},
		{"steps", 1, 100, 8, true, ticks{0, 100, 20, []float64{0, 20, 40, 60, 80, 100}}},
		{"few steps", 1, 3, 8, true, ticks{1, 3, 1, []float64{1, 2, 3}}},
		{"single step", 5, 5, 8, true, ticks{4, 6, 1, []float64{4, 5, 6}}},
		{"flat value", 2, 2, 6, false, ticks{1.8, 2.2, 0.1, nil}},
		{"flat zero", 0, 0, 6, false, ticks{-1, 1, 0.5, []float64{-1, -0.5, 0, 0.5, 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := niceTicks(tc.lo, tc.hi, tc.n, tc.integer)
			assert.InDelta(t, tc.want.lo, got.lo, 1e-12)
			assert.InDelta(t, tc.want.hi, got.hi, 1e-12)
			assert.InDelta(t, tc.want.step, got.step, 1e-12)
			if tc.want.values != nil {
				assert.InDeltaSlice(t, tc.want.values, got.values, 1e-12)
			}
			assert.LessOrEqual(t, got.lo, min(tc.lo, tc.hi))
			assert.GreaterOrEqual(t, got.hi, max(tc.lo, tc.hi))
		})
	}
}

func TestFormatTick(t *testing.T) {
	tests := []struct {
		v, step float64
		want    string
	}{
		{20, 20, "20"},
		{0.6000000000000001, 0.2, "0.6"},
		{1.5, 0.5, "1.5"},
		{-0.0000001, 0.05, "0.00"},
		{2e-5, 5e-6, "2e-05"},
		{7e9, 2e9, "7e+09"},
		{1e-4, 1e-4, "0.0001"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			assert.Equal(t, tc.want, formatTick(tc.v, tc.step))
		})
	}
}

func TestTextWidth(t *testing.T) {
	assert.Equal(t, 0, textWidth(""))
	assert.Equal(t, 10, textWidth("a"))
	assert.Equal(t, 10+12*9, textWidth("train/loss"))
	assert.Equal(t, 10+12, textWidth("λx"))
}

// TestSaveLossPNG: a log history with train and eval losses is drawn; one with neither is no plot.
func TestSaveLossPNG(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loss.png")
	assert.ErrorIs(t, SaveLossPNG(path, []map[string]float64{{"step": 1, "learning_rate": 1e-3}}), fs.ErrNotExist)
	assert.NoFileExists(t, path)
	history := []map[string]float64{{"step": 1, "loss": 2, "learning_rate": 1e-3}, {"step": 2, "loss": 1.5}, {"step": 2, "eval_loss": 1.7}}
	require.NoError(t, SaveLossPNG(path, history))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	assert.Equal(t, defaultWidth, img.Bounds().Dx())
}
