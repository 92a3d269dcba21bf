package xlaclient_test

import (
	"fmt"

	"handbook/multihost/xlaclient"
)

// NewClient checks the job's layout before it loads anything: here node 2 of a 2-node job.
func Example() {
	_, err := xlaclient.NewClient(xlaclient.Config{Plugin: "xla_cuda_plugin.so", NodeID: 2, NumNodes: 2, Store: &countingStore{}})
	fmt.Println(err)
	// Output:
	// xlaclient: node 2 of 2 is not a node of the job
}
