// Package zero places a training run over a mesh of devices the way DeepSpeed's ZeRO stages do,
// on XLA's SPMD partitioner, and estimates the memory each device needs.
//
//   - [Strategy] {Stage, Devices} says what is partitioned over the devices' "data" axis:
//     stage 0 is data parallelism (parameters, gradients and optimizer state replicated, gradients
//     all-reduced), 1 partitions the optimizer state, 2 also the gradients (reduce-scattered), 3
//     also the parameters (gathered where used). The batch is always split on its first axis. It
//     implements train.Placement: set it as the Placement of a trainer (sft, dpo, orpo) or of
//     train.Engine, and train.ShardedStep runs the engine's optimizer step on it; XLA (Shardy)
//     inserts the collectives, so a run gives one device's losses. Every device is a data-parallel
//     replica: a trainer's per_device_train_batch_size is per device, so a micro-batch has that
//     many rows times Devices (train.BatchRows), the epoch's last one completed as accelerate's
//     even_batches does. A nil *Strategy is one device. Over several hosts (Nodes) the mesh is
//     ("node", "local"); Hybrid partitions within a node only (FSDP HYBRID_SHARD), see
//     docs/MULTINODE.md.
//   - [FromAccelerateConfig] reads the handbook's accelerate configs (DeepSpeed, FSDP, DDP) into a
//     Strategy; offload to host memory is refused with an explanation.
//   - [Estimate] gives per-device bytes of parameters, gradients, optimizer state and activations
//     under the ZeRO paper's mixed-precision Adam assumption, with LoRA/QLoRA and gradient
//     checkpointing; `handbook estimate` prints it.
//
// Multi-device runs need the XLA backend: on CPU, tools/install-xla-cpu.sh installs the PJRT
// plugin (its client has 4 host devices), on GPU the CUDA plugin; the Go backend has one device.
package zero
