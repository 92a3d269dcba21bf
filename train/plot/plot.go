package plot

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"strconv"
)

// Point is one logged value of a series.
type Point struct {
	Step  int64
	Value float64
}

// Series is one named line of a chart, e.g. "train/loss" with a point per logging step.
type Series struct {
	Name   string
	Points []Point
}

// Chart describes a line chart. Series are drawn, coloured and listed in the legend in order.
type Chart struct {
	Title  string // above the plot; optional
	XLabel string // under the x axis; empty means "step"
	YLabel string // above the y axis; optional
	Width  int    // pixels; 0 means 800
	Height int    // pixels; 0 means 500
	Series []Series
}

// Size limits and layout, in pixels. Text is the 5×8 font drawn at textScale.
const (
	defaultWidth  = 800
	defaultHeight = 500
	minWidth      = 320
	minHeight     = 200
	textScale     = 2
	charAdvance   = 6 * textScale
	lineHeight    = 8 * textScale // glyph rows, descenders included
	capHeight     = 7 * textScale // glyph rows above the baseline
	marginTop     = 52
	marginRight   = 24 // at least; more when the last x tick label needs it
	marginBottom  = 64
	tickLen       = 6
	lineWidth     = 2.0
	markerRadius  = 3.5
	maxMarkers    = 40 // series with at most this many points also get a dot per point
	legendSwatch  = 24
	legendPadding = 8
)

// Colours: matplotlib's tab10 cycle for the series, greys for the frame.
var (
	palette = []color.RGBA{
		{0x1f, 0x77, 0xb4, 0xff}, {0xff, 0x7f, 0x0e, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0xd6, 0x27, 0x28, 0xff},
		{0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff}, {0xe3, 0x77, 0xc2, 0xff}, {0x7f, 0x7f, 0x7f, 0xff},
		{0xbc, 0xbd, 0x22, 0xff}, {0x17, 0xbe, 0xcf, 0xff},
	}
	white     = color.RGBA{0xff, 0xff, 0xff, 0xff}
	black     = color.RGBA{0x20, 0x20, 0x20, 0xff}
	gridColor = color.RGBA{0xe4, 0xe4, 0xe4, 0xff}
)

// SavePNG draws c into a new PNG file at path (replacing any file there).
func SavePNG(path string, c Chart) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err := WritePNG(f, c); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// WritePNG draws c and encodes it as PNG to w. It fails when no series has a finite point or the size is below
// 320×200.
func WritePNG(w io.Writer, c Chart) error {
	img, err := render(c)
	if err != nil {
		return err
	}
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("plot: encode png: %w", err)
	}
	return nil
}

// render draws the chart.
func render(c Chart) (*image.RGBA, error) {
	width, height := c.Width, c.Height
	if width == 0 {
		width = defaultWidth
	}
	if height == 0 {
		height = defaultHeight
	}
	if width < minWidth || height < minHeight {
		return nil, fmt.Errorf("plot: size %d×%d is below the minimum %d×%d", width, height, minWidth, minHeight)
	}
	xlo, xhi, ylo, yhi, ok := dataBounds(c.Series)
	if !ok {
		return nil, errors.New("plot: no finite points to draw")
	}
	xTicks := niceTicks(xlo, xhi, 8, true)
	yTicks := niceTicks(ylo, yhi, 6, false)
	yLabels := make([]string, len(yTicks.values))
	labelWidth := 0
	for i, v := range yTicks.values {
		yLabels[i] = formatTick(v, yTicks.step)
		labelWidth = max(labelWidth, textWidth(yLabels[i]))
	}

	right := max(marginRight, textWidth(formatTick(xTicks.hi, xTicks.step))/2+8)

	img := image.NewRGBA(image.Rect(0, 0, width, height))
	fillRect(img, img.Bounds(), white)
	area := image.Rect(labelWidth+tickLen+16, marginTop, width-right, height-marginBottom)
	toX := func(x float64) float64 {
		return float64(area.Min.X) + (x-xTicks.lo)/(xTicks.hi-xTicks.lo)*float64(area.Dx())
	}
	toY := func(y float64) float64 {
		return float64(area.Max.Y) - (y-yTicks.lo)/(yTicks.hi-yTicks.lo)*float64(area.Dy())
	}

	// Grid, axes, ticks and their labels.
	for _, v := range xTicks.values {
		px := int(math.Round(toX(v)))
		fillRect(img, image.Rect(px, area.Min.Y, px+1, area.Max.Y), gridColor)
		fillRect(img, image.Rect(px, area.Max.Y, px+1, area.Max.Y+tickLen), black)
		label := formatTick(v, xTicks.step)
		drawText(img, px-textWidth(label)/2, area.Max.Y+tickLen+4, label, black)
	}
	for i, v := range yTicks.values {
		py := int(math.Round(toY(v)))
		fillRect(img, image.Rect(area.Min.X, py, area.Max.X, py+1), gridColor)
		fillRect(img, image.Rect(area.Min.X-tickLen, py, area.Min.X, py+1), black)
		drawText(img, area.Min.X-tickLen-4-textWidth(yLabels[i]), py-capHeight/2, yLabels[i], black)
	}
	fillRect(img, image.Rect(area.Min.X, area.Min.Y, area.Min.X+1, area.Max.Y+1), black)
	fillRect(img, image.Rect(area.Min.X, area.Max.Y, area.Max.X+1, area.Max.Y+1), black)
	fillRect(img, image.Rect(area.Min.X, area.Min.Y, area.Max.X+1, area.Min.Y+1), black)
	fillRect(img, image.Rect(area.Max.X, area.Min.Y, area.Max.X+1, area.Max.Y+1), black)

	xLabel := c.XLabel
	if xLabel == "" {
		xLabel = "step"
	}
	drawText(img, area.Min.X+(area.Dx()-textWidth(xLabel))/2, height-lineHeight-8, xLabel, black)
	drawText(img, (width-textWidth(c.Title))/2, 8, c.Title, black)
	drawText(img, 8, marginTop-lineHeight-12, c.YLabel, black)

	// The lines: a segment joins consecutive finite points; NaN or ±Inf breaks the line. Every pixel a line
	// passes near is counted, to place the legend where it hides the least.
	var covered []image.Point
	for i, s := range c.Series {
		col := palette[i%len(palette)]
		var prevX, prevY float64
		havePrev := false
		for _, p := range s.Points {
			if !finite(p.Value) {
				havePrev = false
				continue
			}
			x, y := toX(float64(p.Step)), toY(p.Value)
			if havePrev {
				drawSegment(img, prevX, prevY, x, y, lineWidth, col)
				n := int(math.Hypot(x-prevX, y-prevY)/4) + 1
				for k := range n {
					f := float64(k) / float64(n)
					covered = append(covered, image.Pt(int(prevX+f*(x-prevX)), int(prevY+f*(y-prevY))))
				}
			}
			covered = append(covered, image.Pt(int(x), int(y)))
			if len(s.Points) <= maxMarkers {
				drawSegment(img, x, y, x, y, 2*markerRadius, col)
			}
			prevX, prevY, havePrev = x, y, true
		}
	}
	drawLegend(img, area, c.Series, covered)
	return img, nil
}

// drawLegend lists the series in a framed box in the corner of the plot area that covers the fewest of the
// covered points (top right, then top left, bottom right, bottom left on ties).
func drawLegend(img *image.RGBA, area image.Rectangle, series []Series, covered []image.Point) {
	if len(series) == 0 {
		return
	}
	nameWidth := 0
	for _, s := range series {
		nameWidth = max(nameWidth, textWidth(s.Name))
	}
	rowHeight := lineHeight + 6
	size := image.Pt(legendSwatch+nameWidth+3*legendPadding, len(series)*rowHeight+2*legendPadding-6)
	var box image.Rectangle
	best := -1
	for _, corner := range []image.Point{
		{area.Max.X - size.X - 10, area.Min.Y + 10}, {area.Min.X + 10, area.Min.Y + 10},
		{area.Max.X - size.X - 10, area.Max.Y - size.Y - 10}, {area.Min.X + 10, area.Max.Y - size.Y - 10},
	} {
		candidate := image.Rectangle{Min: corner, Max: corner.Add(size)}
		hidden := 0
		for _, p := range covered {
			if p.In(candidate.Inset(-4)) {
				hidden++
			}
		}
		if best < 0 || hidden < best {
			box, best = candidate, hidden
		}
	}
	fillRect(img, box, white)
	fillRect(img, image.Rect(box.Min.X, box.Min.Y, box.Max.X, box.Min.Y+1), black)
	fillRect(img, image.Rect(box.Min.X, box.Max.Y-1, box.Max.X, box.Max.Y), black)
	fillRect(img, image.Rect(box.Min.X, box.Min.Y, box.Min.X+1, box.Max.Y), black)
	fillRect(img, image.Rect(box.Max.X-1, box.Min.Y, box.Max.X, box.Max.Y), black)
	for i, s := range series {
		y := box.Min.Y + legendPadding + i*rowHeight
		mid := float64(y) + float64(capHeight)/2
		x0 := float64(box.Min.X + legendPadding)
		drawSegment(img, x0, mid, x0+legendSwatch, mid, lineWidth+1, palette[i%len(palette)])
		drawText(img, box.Min.X+2*legendPadding+legendSwatch, y, s.Name, black)
	}
}

// dataBounds is the range of the finite points of all series.
func dataBounds(series []Series) (xlo, xhi, ylo, yhi float64, ok bool) {
	xlo, ylo = math.Inf(1), math.Inf(1)
	xhi, yhi = math.Inf(-1), math.Inf(-1)
	for _, s := range series {
		for _, p := range s.Points {
			if !finite(p.Value) {
				continue
			}
			x := float64(p.Step)
			xlo, xhi = min(xlo, x), max(xhi, x)
			ylo, yhi = min(ylo, p.Value), max(yhi, p.Value)
			ok = true
		}
	}
	return xlo, xhi, ylo, yhi, ok
}

func finite(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0)
}

// ticks is an axis range rounded out to multiples of step, and the tick values in it.
type ticks struct {
	lo, hi, step float64
	values       []float64
}

// niceTicks covers [lo, hi] with about n intervals whose width is 1, 2 or 5 times a power of ten (at least 1
// when integer). An empty range is widened so that the data sits mid-axis.
func niceTicks(lo, hi float64, n int, integer bool) ticks {
	if hi == lo {
		pad := math.Abs(lo) * 0.1
		if pad == 0 || integer {
			pad = 1
		}
		lo, hi = lo-pad, hi+pad
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	if integer {
		step = max(step, 1)
	}
	first, last := math.Floor(lo/step), math.Ceil(hi/step)
	t := ticks{lo: first * step, hi: last * step, step: step}
	for k := first; k <= last; k++ {
		t.values = append(t.values, k*step)
	}
	return t
}

// formatTick writes a tick value with just the decimals its axis step needs, or in exponent form for very
// large or small steps.
func formatTick(v, step float64) string {
	if step >= 1e6 || step < 1e-4 {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	decimals := max(0, int(math.Ceil(-math.Log10(step)-1e-9)))
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if neg, err := strconv.ParseFloat(s, 64); err == nil && neg == 0 {
		s = strconv.FormatFloat(0, 'f', decimals, 64) // no "-0.0"
	}
	return s
}

// textWidth is the width in pixels of s drawn by drawText.
func textWidth(s string) int {
	n := len([]rune(s))
	if n == 0 {
		return 0
	}
	return n*charAdvance - textScale
}

// drawText draws s with its top-left corner at (x, y); characters outside printable ASCII show as '?'.
func drawText(img *image.RGBA, x, y int, s string, c color.RGBA) {
	for _, r := range s {
		if r < ' ' || r > '~' {
			r = '?'
		}
		glyph := font5x8[r-' ']
		for col, bits := range glyph {
			for row := range 8 {
				if bits&(1<<row) != 0 {
					px, py := x+col*textScale, y+row*textScale
					fillRect(img, image.Rect(px, py, px+textScale, py+textScale), c)
				}
			}
		}
		x += charAdvance
	}
}

// fillRect paints r (clipped to the image) with c.
func fillRect(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// drawSegment draws an anti-aliased segment of the given width with round caps from (x0, y0) to (x1, y1), in
// pixel coordinates (a pixel's centre is at +0.5). A zero-length segment is a dot of diameter width.
func drawSegment(img *image.RGBA, x0, y0, x1, y1, width float64, c color.RGBA) {
	half := width / 2
	box := image.Rect(
		int(math.Floor(min(x0, x1)-half-1)), int(math.Floor(min(y0, y1)-half-1)),
		int(math.Ceil(max(x0, x1)+half+1)), int(math.Ceil(max(y0, y1)+half+1)),
	).Intersect(img.Bounds())
	dx, dy := x1-x0, y1-y0
	length2 := dx*dx + dy*dy
	for py := box.Min.Y; py < box.Max.Y; py++ {
		for px := box.Min.X; px < box.Max.X; px++ {
			cx, cy := float64(px)+0.5, float64(py)+0.5
			t := 0.0
			if length2 > 0 {
				t = min(1, max(0, ((cx-x0)*dx+(cy-y0)*dy)/length2))
			}
			d := math.Hypot(cx-(x0+t*dx), cy-(y0+t*dy))
			if cover := min(1, half+0.5-d); cover > 0 {
				blend(img, px, py, c, cover)
			}
		}
	}
}

// blend mixes c over the pixel at (x, y) with opacity a.
func blend(img *image.RGBA, x, y int, c color.RGBA, a float64) {
	dst := img.RGBAAt(x, y)
	mix := func(d, s uint8) uint8 {
		return uint8(math.Round(float64(d)*(1-a) + float64(s)*a))
	}
	img.SetRGBA(x, y, color.RGBA{mix(dst.R, c.R), mix(dst.G, c.G), mix(dst.B, c.B), 0xff})
}
