package tbevent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"handbook/train/tbevent"
)

// Log a few training and evaluation metrics the way transformers' TensorBoardCallback does.
func Example() {
	outputDir, err := os.MkdirTemp("", "tbevent-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(outputDir)

	dir := tbevent.LogDir(outputDir, time.Date(2025, time.July, 4, 9, 5, 3, 0, time.UTC), "box")
	w, err := tbevent.Create(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	for step, loss := range []float64{2.1, 1.7, 1.4} {
		if err := w.Scalar(tbevent.Tag("loss"), int64(step+1), loss, time.Now()); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := w.Scalar(tbevent.Tag("eval_loss"), 3, 1.5, time.Now()); err != nil {
		fmt.Println(err)
		return
	}
	if err := w.Close(); err != nil {
		fmt.Println(err)
		return
	}
	rel, err := filepath.Rel(outputDir, w.Name())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(filepath.Dir(rel))
	fmt.Println(strings.HasPrefix(filepath.Base(rel), "events.out.tfevents."))
	// Output:
	// runs/Jul04_09-05-03_box
	// true
}
