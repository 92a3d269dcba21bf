package xlatest_test

import (
	"testing"

	"handbook/internal/xlatest"
)

// A test on two host devices of the XLA CPU plugin.
func Example() {
	var t testing.T // in a real test: the *testing.T it is given
	b := xlatest.Backend(&t, 2)
	_ = b.NumDevices()
}
