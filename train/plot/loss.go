package plot

import "io/fs"

// SaveLossPNG draws a run's train and eval losses from its log history (trainer_state.json's
// log_history: "loss" and "eval_loss" entries by "step") into a PNG at path; fs.ErrNotExist when
// the history has neither.
func SaveLossPNG(path string, logHistory []map[string]float64) error {
	trainLoss, evalLoss := Series{Name: "train loss"}, Series{Name: "eval loss"}
	for _, e := range logHistory {
		step := int64(e["step"])
		if v, ok := e["loss"]; ok {
			trainLoss.Points = append(trainLoss.Points, Point{Step: step, Value: v})
		}
		if v, ok := e["eval_loss"]; ok {
			evalLoss.Points = append(evalLoss.Points, Point{Step: step, Value: v})
		}
	}
	chart := Chart{Title: "loss", YLabel: "loss"}
	for _, s := range []Series{trainLoss, evalLoss} {
		if len(s.Points) > 0 {
			chart.Series = append(chart.Series, s)
		}
	}
	if len(chart.Series) == 0 {
		return fs.ErrNotExist
	}
	return SavePNG(path, chart)
}
