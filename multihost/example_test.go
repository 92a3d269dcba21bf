package multihost_test

import (
	"fmt"

	"handbook/multihost"
)

// Resolve a host's place in a two-node Slurm job: flags win over the environment, which wins over
// Slurm's own variables.
func Example() {
	slurm := map[string]string{"SLURM_NNODES": "2", "SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_JOB_NODELIST": "gpu[07-08]"}
	fromSlurm, err := multihost.FromSlurm(func(k string) string { return slurm[k] })
	if err != nil {
		fmt.Println(err)
		return
	}
	port := 6000
	flags := multihost.FromFlags(nil, nil, "", &port)
	w, err := multihost.Resolve(flags, fromSlurm)
	fmt.Println(w.Nodes, w.Rank, w.Coordinator, w.From["machine_rank"], err)
	// Output:
	// 2 1 gpu07:6000 SLURM_PROCID <nil>
}
