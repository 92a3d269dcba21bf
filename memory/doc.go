// Package memory sizes the device memory of a training configuration two ways: Measure compiles
// the real training step — the same graphs train.Engine runs, with the same placement, precision
// and adapter — on the XLA CPU plugin from shapes alone (no weight is allocated) and reads XLA's
// own accounting of each compiled program; Estimate is the closed form `handbook estimate` prints
// (zero.Estimate), calibrated against Measure. docs/PERFORMANCE.md records both for the seed's
// GPU configurations.
//
// XLA's CPU compiler evaluates bf16 arithmetic in float32, which would make a bf16 step's
// temporaries larger than a GPU's; on the CPU plugin Measure therefore compiles bf16 as float16
// under UseGPUShapedXLAFlags, so the figures are a GPU's (see Measure). The arguments and outputs
// (weights, gradients, optimizer state) are exact for any device.
package memory
