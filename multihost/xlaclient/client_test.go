package xlaclient_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomlx/go-xla/pjrt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/internal/testenv"
	"handbook/multihost"
	"handbook/multihost/xlaclient"
)

// countingStore is an in-memory Store that counts PJRT's calls.
type countingStore struct {
	mu    sync.Mutex
	kv    map[string][]byte
	calls []string
}

func (s *countingStore) Put(k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "put "+k)
	s.kv[k] = v
	return nil
}

func (s *countingStore) Get(k string, _ time.Duration) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "get "+k)
	if v, ok := s.kv[k]; ok {
		return v, nil
	}
	return nil, context.DeadlineExceeded
}

func (s *countingStore) TryGet(k string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "try_get "+k)
	v, ok := s.kv[k]
	return v, ok, nil
}

// TestCPUPluginIgnoresDistributedOptions is the evidence docs/MULTINODE.md records: the PyPI XLA
// CPU plugin (xla-cpu-pjrt 0.0.1), created as node 1 of 2 with the key-value callbacks set, never
// calls them and answers as a lone process: process index 0, only its own devices, all of them
// addressable. Its PJRT_Client_Create reads cpu_device_count alone (XLA's
// pjrt_c_api_cpu_internal.cc); cross-process collectives on CPU exist only in jaxlib's C++
// client (Gloo/MPI), which the C API does not reach.
func TestCPUPluginIgnoresDistributedOptions(t *testing.T) {
	store := &countingStore{kv: map[string][]byte{}}
	client, err := xlaclient.NewClient(xlaclient.Config{Plugin: testenv.XLACPUPlugin(t), NodeID: 1, NumNodes: 2, Store: store,
		Options: pjrt.NamedValuesMap{"cpu_device_count": int64(2)}})
	require.NoError(t, err)
	defer client.Destroy()
	all, err := client.AllDevices()
	require.NoError(t, err)
	assert.Equal(t, 0, client.ProcessIndex(), "process index of node 1 of 2")
	assert.Len(t, all, 2, "global devices: only this process's 2")
	assert.Len(t, client.AddressableDevices(), 2)
	for i, d := range all {
		desc, err := d.GetDescription()
		require.NoError(t, err)
		assert.Equal(t, 0, desc.ProcessIndex(), "device %d", i)
	}
	assert.Empty(t, store.calls, "the plugin called the key-value store")
	t.Logf("CPU plugin as node 1 of 2: process index %d, %d devices (%d addressable), %d key-value calls",
		client.ProcessIndex(), len(all), len(client.AddressableDevices()), len(store.calls))

	_, err = xlaclient.NewClient(xlaclient.Config{Plugin: testenv.XLACPUPlugin(t), NodeID: 0, NumNodes: 1, Store: store})
	assert.ErrorContains(t, err, "already created its distributed client")
}

// fakePlugin builds testdata/fakeplugin.c, a plugin that does the GPU client's key-value exchange
// at creation and then starts the real CPU plugin.
func fakePlugin(t *testing.T) string {
	t.Helper()
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	out := filepath.Join(t.TempDir(), "pjrt_c_api_fake_plugin.so")
	cmd := exec.Command(cc, "-shared", "-fPIC", "-o", out, "testdata/fakeplugin.c", "-I.", "-ldl")
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "building the fake plugin: %s", msg)
	return out
}

// TestHelperProcess is one rank of TestKeyValueCallbacksAcrossProcesses: join the rendezvous,
// create the client through the fake plugin, print the devices.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("XLACLIENT_HELPER") == "" {
		t.Skip("helper process of TestKeyValueCallbacksAcrossProcesses; runs only when it starts it")
	}
	atoi := func(k string) int { n, _ := strconv.Atoi(os.Getenv(k)); return n }
	rank, nodes := atoi("HELPER_RANK"), atoi("HELPER_NODES")
	w := multihost.World{Nodes: nodes, Rank: rank, Coordinator: fmt.Sprintf("127.0.0.1:%d", atoi("HELPER_PORT"))}
	m, err := multihost.Join(context.Background(), w, multihost.Options{JoinTimeout: 20 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	client, err := xlaclient.NewClient(xlaclient.Config{Plugin: os.Getenv("HELPER_PLUGIN"), NodeID: rank, NumNodes: nodes, Store: m,
		Options: pjrt.NamedValuesMap{"cpu_device_count": int64(2)}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		m.Close()
		os.Exit(3)
	}
	fmt.Printf("rank %d: %d addressable devices\n", rank, len(client.AddressableDevices()))
	if err := m.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(0)
}

func runHelpers(t *testing.T, plugin string, nodes int, extraEnv ...string) (stdout, stderr, reports []string, codes []int) {
	t.Helper()
	port, dir := testenv.FreePort(t), t.TempDir()
	cmds := make([]*exec.Cmd, nodes)
	outs, errs := make([]strings.Builder, nodes), make([]strings.Builder, nodes)
	for r := range nodes {
		cmds[r] = exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmds[r].Env = append(append(os.Environ(), "XLACLIENT_HELPER=1", "HELPER_PLUGIN="+plugin,
			fmt.Sprintf("HELPER_RANK=%d", r), fmt.Sprintf("HELPER_NODES=%d", nodes), fmt.Sprintf("HELPER_PORT=%d", port),
			"FAKE_PJRT_REAL="+testenv.XLACPUPlugin(t), "FAKE_PJRT_REPORT="+filepath.Join(dir, fmt.Sprintf("report%d", r))), extraEnv...)
		cmds[r].Stdout, cmds[r].Stderr = &outs[r], &errs[r]
		require.NoError(t, cmds[r].Start())
	}
	for r, c := range cmds {
		_ = c.Wait()
		codes = append(codes, c.ProcessState.ExitCode())
		stdout, stderr = append(stdout, outs[r].String()), append(stderr, errs[r].String())
		report, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("report%d", r)))
		reports = append(reports, string(report))
	}
	return stdout, stderr, reports, codes
}

// TestKeyValueCallbacksAcrossProcesses: two processes create their PJRT clients through
// NewClient on a plugin that exchanges topology through the callbacks as XLA's GPU client does;
// each sees the other's entry through the rendezvous store, try_get of a missing key answers
// NOT_FOUND, and a get that times out fails the creation with DEADLINE_EXCEEDED and the store's
// message.
func TestKeyValueCallbacksAcrossProcesses(t *testing.T) {
	plugin := fakePlugin(t)
	stdout, stderr, reports, codes := runHelpers(t, plugin, 2)
	for r := range 2 {
		require.Equal(t, 0, codes[r], "rank %d: %s", r, stderr[r])
		assert.Contains(t, stdout[r], fmt.Sprintf("rank %d: 2 addressable devices", r))
		assert.Regexp(t, `saw node 0 pid \d+\nsaw node 1 pid \d+\n`, reports[r], "rank %d", r)
		assert.Contains(t, reports[r], `try_get fake/absent: code 5: key "pjrt/fake/absent" is not set`)
	}
	t.Logf("rank 0's plugin saw:\n%s", reports[0])

	_, stderr, _, codes = runHelpers(t, plugin, 1, "FAKE_PJRT_GET_MISSING=1")
	assert.Equal(t, 3, codes[0], stderr[0])
	assert.Contains(t, stderr[0], "creating the PJRT client of node 0 of 1")
	assert.Contains(t, stderr[0], `key "pjrt/fake/never-set" was not set within 300ms`)
}
