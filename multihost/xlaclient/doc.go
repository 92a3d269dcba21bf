// Package xlaclient creates the PJRT client of one process of a multi-host job: the plugin gets
// node_id and num_nodes among its create options and PJRT_Client_Create's key-value callbacks
// (kv_get, kv_try_get, kv_put) served by the job's store (a *multihost.Member), which is how
// XLA's CUDA plugin builds a client whose devices span every host — the processes exchange their
// topology, and later their NCCL ids, through that store. JAX does the same through
// jax.distributed.
//
// Why here and how: go-xla v0.4.13 leaves the callbacks empty ("No callback support yet" in
// pjrt/clients.go). Rather than carry a patched copy of go-xla, this package loads the plugin
// itself, copies its PJRT_Api table with PJRT_Client_Create wrapped to fill in the callbacks, and
// registers the copy with go-xla's pjrt.RegisterPreloadedPlugin; every other call goes to the
// plugin untouched. The C side is a few ABI declarations (pjrt_abi.h) and trampolines (kv.c).
//
// The PyPI XLA CPU plugin ignores all of it (it reads only cpu_device_count and has no
// cross-process collectives): see docs/MULTINODE.md and TestCPUPluginIgnoresDistributedOptions.
package xlaclient
