package backend

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestChooseHonoursEnv(t *testing.T) {
	t.Setenv(EnvVar, "go")
	sel := Choose()
	assert.Equal(t, "go", sel.Config)
	assert.Contains(t, sel.Reason, EnvVar)
	b, sel, err := New()
	require.NoError(t, err)
	defer b.Finalize()
	assert.Equal(t, "go", sel.Config)
}

func TestUnknownForcedBackendIsAnError(t *testing.T) {
	t.Setenv(EnvVar, "no-such-backend")
	_, _, err := New()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no-such-backend")
}
