package train

import (
	"reflect"

	"handbook/model"
)

// Adapter is a small set of weights trained on top of a frozen model: a LoRA adapter
// (*lora.Adapter implements it). It is the one field that turns a run into an adapter run. Given
// one, the engine and every trainer (sft, dpo, orpo) update only the weights Trainable selects,
// write checkpoints and the final output through the adapter's WeightsIO (the adapter alone,
// e.g. PEFT's adapter_model.safetensors), build training graphs on TrainingDecoder (dropout,
// fast gradients) and, for DPO, score the reference policy with BaseDecoder: the base model with
// the adapter disabled, on the same weights — no second copy.
//
// A nil Adapter, or an Adapter holding a nil pointer (a nil *lora.Adapter), means a full
// fine-tune.
type Adapter interface {
	WeightsIO
	// Trainable reports whether the optimizer updates the named weight. Every other weight is
	// frozen: no gradient, no optimizer state.
	Trainable(name string) bool
	// TrainingDecoder returns the decoder a training graph runs, given (a copy of) the model's
	// decoder: the adapter in training mode, its dropout masks drawn from seed (Args.Seed).
	// Evaluation and generation keep using the model's own decoder.
	TrainingDecoder(dec *model.Decoder, seed uint64) *model.Decoder
	// BaseDecoder computes the model with the adapter disabled, from the same weights (PEFT's
	// disable_adapter).
	BaseDecoder() *model.Decoder
}

// OrNil returns v, or T's zero value (a nil interface) when v holds a nil pointer. A nil
// *lora.Adapter stored in an Adapter field, or a nil *zero.Strategy in a Placement field, is not
// nil to Go's == nil; trainers pass their Adapter and Placement fields through OrNil so that
// such a value means "none" (a full fine-tune, one device) instead of crashing on first use, as
// database/sql treats a nil pointer driver.Valuer as NULL.
func OrNil[T any](v T) T {
	rv := reflect.ValueOf(any(v))
	if !rv.IsValid() {
		return v // already nil
	}
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		if rv.IsNil() {
			var zero T
			return zero
		}
	}
	return v
}
