// Command multihost checks one process of a multi-host job on a real PJRT plugin (the CUDA one):
// it joins the rendezvous (rank 0 serves it), creates the PJRT client with node_id/num_nodes and
// the key-value callbacks, and checks that the client sees the whole job — its process index is
// its rank, the global device list is every process's addressable devices, each device names
// the process that owns it. With -hold it then waits, so a test can kill a rank and watch the
// others end with an error naming it. tools/multihost/gpu-check.sh runs it on a GPU machine.
//
//	multihost -plugin xla_cuda_plugin.so -num_machines 2 -machine_rank 1 -main_process_ip head
//
// The layout comes from the flags, else MASTER_ADDR/MASTER_PORT/NODE_RANK/NNODES, else
// -config_file (an accelerate config), else Slurm. Exit codes: 0 checks passed, 1 a check
// failed or setup failed, 3 the job failed under this rank (another rank was lost).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/go-xla/pjrt"

	"handbook/multihost"
	"handbook/multihost/xlaclient"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "multihost:", err)
		os.Exit(1)
	}
}

func run() error {
	plugin := flag.String("plugin", "", "PJRT plugin library (xla_cuda_plugin.so)")
	numMachines := flag.Int("num_machines", -1, "processes (hosts) in the job")
	machineRank := flag.Int("machine_rank", -1, "this process's rank")
	ip := flag.String("main_process_ip", "", "rank 0's address")
	port := flag.Int("main_process_port", -1, "rank 0's port")
	configFile := flag.String("config_file", "", "accelerate config with num_machines/machine_rank/main_process_ip/main_process_port")
	visible := flag.String("visible_devices", "", "comma-separated device ids this process drives (the CUDA plugin's visible_devices)")
	joinTimeout := flag.Duration("join_timeout", 2*time.Minute, "how long to wait for every rank")
	hold := flag.Bool("hold", false, "after the checks, wait until the job fails under this rank (exit 3)")
	flag.Parse()
	if *plugin == "" {
		return fmt.Errorf("-plugin is required")
	}
	given := func(n int) *int {
		if n < 0 {
			return nil
		}
		return &n
	}
	sources := []multihost.Launch{multihost.FromFlags(given(*numMachines), given(*machineRank), *ip, given(*port))}
	env, err := multihost.FromEnv(os.Getenv)
	if err != nil {
		return err
	}
	sources = append(sources, env)
	if *configFile != "" {
		cfg, err := multihost.FromAccelerateConfig(*configFile)
		if err != nil {
			return err
		}
		sources = append(sources, cfg)
	}
	slurm, err := multihost.FromSlurm(os.Getenv)
	if err != nil {
		return err
	}
	w, err := multihost.Resolve(append(sources, slurm)...)
	if err != nil {
		return err
	}
	if w.Nodes < 2 {
		return fmt.Errorf("one machine: give -num_machines (or NNODES, SLURM_NNODES) of at least 2")
	}
	m, err := multihost.Join(context.Background(), w, multihost.Options{JoinTimeout: *joinTimeout,
		OnFailure: func(err error) {
			fmt.Fprintf(os.Stderr, "rank %d ends: %v\n", w.Rank, err)
			os.Exit(3)
		}})
	if err != nil {
		return err
	}
	fmt.Printf("rank %d of %d joined the rendezvous at %s\n", w.Rank, w.Nodes, w.Coordinator)
	opts := pjrt.NamedValuesMap{}
	if *visible != "" {
		var ids []int64
		for _, f := range strings.Split(*visible, ",") {
			id, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil {
				return fmt.Errorf("-visible_devices %q: %w", *visible, err)
			}
			ids = append(ids, id)
		}
		opts["visible_devices"] = ids
	}
	client, err := xlaclient.NewClient(xlaclient.Config{Plugin: *plugin, Options: opts, NodeID: w.Rank, NumNodes: w.Nodes, Store: m})
	if err != nil {
		m.Abort(err)
		return err
	}
	failed := check(m, client)
	if *hold {
		fmt.Println("holding")
		<-m.Context().Done()
		return nil
	}
	if err := m.Close(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d check(s) failed", failed)
	}
	return nil
}

// check prints and counts the failed checks of the client's view of the job.
func check(m *multihost.Member, client *pjrt.Client) (failed int) {
	w := m.World
	expect := func(ok bool, format string, args ...any) {
		status := "PASS"
		if !ok {
			status, failed = "FAIL", failed+1
		}
		fmt.Printf("%s rank %d: %s\n", status, w.Rank, fmt.Sprintf(format, args...))
	}
	local := len(client.AddressableDevices())
	expect(client.ProcessIndex() == w.Rank, "process index %d (want the rank, %d)", client.ProcessIndex(), w.Rank)
	all, err := client.AllDevices()
	if err != nil {
		expect(false, "reading the global device list: %v", err)
		return failed
	}
	if err := m.Put(fmt.Sprintf("check/addressable/%d", w.Rank), []byte(strconv.Itoa(local))); err != nil {
		expect(false, "publishing the addressable device count: %v", err)
		return failed
	}
	perRank := make([]int, w.Nodes)
	total := 0
	for r := range w.Nodes {
		v, err := m.Get(fmt.Sprintf("check/addressable/%d", r), time.Minute)
		if err != nil {
			expect(false, "rank %d's addressable device count: %v", r, err)
			return failed
		}
		perRank[r], _ = strconv.Atoi(string(v))
		total += perRank[r]
	}
	expect(len(all) == total, "%d global devices = the ranks' addressable devices %v", len(all), perRank)
	owned := make([]int, w.Nodes)
	for i, d := range all {
		desc, err := d.GetDescription()
		if err != nil {
			expect(false, "device %d: %v", i, err)
			continue
		}
		if p := desc.ProcessIndex(); p >= 0 && p < w.Nodes {
			owned[p]++
		} else {
			expect(false, "device %d names process %d, outside the job", i, p)
		}
	}
	expect(fmt.Sprint(owned) == fmt.Sprint(perRank), "devices per process %v = addressable per rank %v", owned, perRank)
	return failed
}
