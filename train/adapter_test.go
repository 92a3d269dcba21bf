package train

import (
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/assert"

	"handbook/model"
)

// nilSafe is a pointer type implementing Adapter, for OrNil.
type nilSafe struct{}

func (*nilSafe) Trainable(string) bool                                     { return true }
func (*nilSafe) SaveWeights(string) error                                  { return nil }
func (*nilSafe) LoadWeights(string) (map[string]*tensors.Tensor, error)    { return nil, nil }
func (*nilSafe) TrainingDecoder(d *model.Decoder, _ uint64) *model.Decoder { return d }
func (*nilSafe) BaseDecoder() *model.Decoder                               { return nil }

// TestOrNil: a nil pointer in an interface becomes a nil interface; set values and nil interfaces
// pass through.
func TestOrNil(t *testing.T) {
	var typedNil Adapter = (*nilSafe)(nil)
	assert.True(t, typedNil != nil, "Go's typed nil is not == nil")
	assert.True(t, OrNil(typedNil) == nil)
	set := Adapter(&nilSafe{})
	assert.True(t, OrNil(set) == set)
	assert.True(t, OrNil[Adapter](nil) == nil)
	var w WeightsIO = typedNil
	assert.True(t, OrNil(w) == nil)
	assert.True(t, OrNil((*nilSafe)(nil)) == nil)
	assert.Equal(t, 3, OrNil(3))
}
