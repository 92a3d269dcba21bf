//go:build goexperiment.simd

package handbook

// simdBuild reports whether the tests were built with GOEXPERIMENT=simd (the Go backend's SIMD
// kernels).
const simdBuild = true
