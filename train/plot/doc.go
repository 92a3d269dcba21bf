// Package plot draws the loss-curve PNG a training run leaves in its output directory: one line per series
// (train/loss, eval/loss, …) against the optimizer step, with axes, "nice" ticks, a grid and a legend.
//
// It uses only the standard library (image, image/png) and a built-in 5×7 bitmap font, so it needs no font
// files and no network. NaN and ±Inf values are left out of a line (a training run that diverged still gets its
// plot up to the failing step).
package plot
