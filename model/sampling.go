package model

import "math"

// LogSoftmaxAt returns log softmax(logits)[i], computed stably in float64: a token's log-probability
// from a row of logits.
func LogSoftmaxAt(logits []float32, i int) float64 {
	maxV := math.Inf(-1)
	for _, v := range logits {
		maxV = math.Max(maxV, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - maxV)
	}
	return float64(logits[i]) - maxV - math.Log(sum)
}
