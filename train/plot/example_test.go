package plot_test

import (
	"fmt"
	"os"
	"path/filepath"

	"handbook/train/plot"
)

// Draw the loss curves of a short run into output_dir/loss.png.
func Example() {
	dir, err := os.MkdirTemp("", "plot-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	train := plot.Series{Name: "train/loss"}
	for step, loss := range []float64{2.3, 1.9, 1.6, 1.4, 1.3, 1.25} {
		train.Points = append(train.Points, plot.Point{Step: int64(step + 1), Value: loss})
	}
	eval := plot.Series{Name: "eval/loss", Points: []plot.Point{{Step: 3, Value: 1.7}, {Step: 6, Value: 1.4}}}
	path := filepath.Join(dir, "loss.png")
	if err := plot.SavePNG(path, plot.Chart{Title: "loss", Series: []plot.Series{train, eval}}); err != nil {
		fmt.Println(err)
		return
	}
	info, err := os.Stat(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(info.Size() > 0)
	// Output: true
}
