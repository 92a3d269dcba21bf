// Package multihost joins the processes of a multi-host job — one process per host, each driving
// all of its host's devices, as XLA's PJRT runtime wants — and keeps them honest about each other.
//
//   - [World] is this host's place in the job: how many hosts, which one this is, where rank 0
//     serves the rendezvous. [Resolve] takes it from the sources a Python-stack user already sets,
//     in precedence order: accelerate launch's flags ([FromFlags]: --num_machines,
//     --machine_rank, --main_process_ip, --main_process_port), torch.distributed's environment
//     ([FromEnv]: MASTER_ADDR, MASTER_PORT, NODE_RANK, NNODES), the accelerate config file
//     ([FromAccelerateConfig]) and Slurm ([FromSlurm]: SLURM_NNODES, SLURM_PROCID, the first host
//     of SLURM_JOB_NODELIST).
//   - [Join] makes the process a [Member]: rank 0 serves a key-value store over TCP, every rank
//     waits until all have joined, with timeouts whose errors name the ranks that never came.
//     The store is what PJRT's client creation asks for (PJRT_Client_Create's kv_get/kv_put
//     callbacks: the processes exchange their device topology and NCCL ids through it); package
//     multihost/xlaclient hands it to a PJRT plugin.
//   - Failure: a rank whose process dies (its connection closes) or stops sending heartbeats is
//     lost, and every other rank learns it at once as a [PeerError] naming the rank — through
//     [Member.Context] and [Options.OnFailure] — instead of hanging in a collective.
//
// Written on net/rpc rather than taken from JAX/XLA's coordination service, which is C++ behind
// gRPC inside jaxlib and not reachable from Go; the protocol is small (join, put, get, heartbeat,
// watch, abort, leave).
package multihost
