package multihost_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/internal/testenv"
	"handbook/multihost"
)

// The tests below run ranks as separate processes: this test binary, re-executed with
// MULTIHOST_HELPER naming what the rank does.

// helperExitFailed is a helper rank's exit code when the job failed under it.
const helperExitFailed = 3

func TestHelperProcess(t *testing.T) {
	role := os.Getenv("MULTIHOST_HELPER")
	if role == "" {
		t.Skip("helper process of the multi-process tests; runs only when they start it")
	}
	atoi := func(k string) int { n, _ := strconv.Atoi(os.Getenv(k)); return n }
	rank, nodes, port := atoi("HELPER_RANK"), atoi("HELPER_NODES"), atoi("HELPER_PORT")
	opts := multihost.Options{
		JoinTimeout:       time.Duration(atoi("HELPER_JOIN_MS")) * time.Millisecond,
		HeartbeatInterval: 100 * time.Millisecond,
		HeartbeatTimeout:  time.Duration(atoi("HELPER_HEARTBEAT_MS")) * time.Millisecond,
		OnFailure: func(err error) {
			fmt.Fprintln(os.Stderr, "rank", rank, "ends:", err)
			os.Exit(helperExitFailed)
		},
	}
	m, err := multihost.Join(context.Background(), world(nodes, rank, port), opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("joined")
	switch role {
	case "exchange":
		if err := m.Put(fmt.Sprintf("rank/%d", rank), []byte(fmt.Sprintf("pid %d", os.Getpid()))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		for r := range nodes {
			v, err := m.Get(fmt.Sprintf("rank/%d", r), 10*time.Second)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			fmt.Printf("rank %d saw rank %d: %s\n", rank, r, v)
		}
		if err := m.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	case "wait": // until the job fails under it
		time.Sleep(time.Minute)
		os.Exit(0)
	}
}

type rankProcess struct {
	cmd    *exec.Cmd
	stdout *bufio.Reader
	stderr bytes.Buffer
}

func startRank(t *testing.T, role string, rank, nodes, port int, heartbeat time.Duration) *rankProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "MULTIHOST_HELPER="+role,
		fmt.Sprintf("HELPER_RANK=%d", rank), fmt.Sprintf("HELPER_NODES=%d", nodes), fmt.Sprintf("HELPER_PORT=%d", port),
		"HELPER_JOIN_MS=20000", fmt.Sprintf("HELPER_HEARTBEAT_MS=%d", heartbeat.Milliseconds()))
	p := &rankProcess{cmd: cmd}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	p.stdout = bufio.NewReader(out)
	cmd.Stderr = &p.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return p
}

// waitLine reads the rank's stdout until a line equal to want.
func (p *rankProcess) waitLine(t *testing.T, want string) {
	t.Helper()
	for {
		line, err := p.stdout.ReadString('\n')
		if strings.TrimSpace(line) == want {
			return
		}
		require.NoError(t, err, "rank process ended before printing %q; stderr: %s", want, p.stderr.String())
	}
}

// exit waits up to limit for the process to end and returns its exit code and how long it took.
func (p *rankProcess) exit(t *testing.T, limit time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, _ = io.Copy(io.Discard, p.stdout)
		done <- p.cmd.Wait()
	}()
	select {
	case <-done:
		return p.cmd.ProcessState.ExitCode(), time.Since(start)
	case <-time.After(limit):
		t.Fatalf("rank process still running after %s; stderr: %s", limit, p.stderr.String())
		return 0, 0
	}
}

// TestTwoProcessesExchange: two processes rendezvous on localhost and each reads the other's key.
func TestTwoProcessesExchange(t *testing.T) {
	port := testenv.FreePort(t)
	ranks := []*rankProcess{startRank(t, "exchange", 0, 2, port, time.Minute), startRank(t, "exchange", 1, 2, port, time.Minute)}
	for r, p := range ranks {
		out, err := io.ReadAll(p.stdout)
		require.NoError(t, err)
		require.NoError(t, p.cmd.Wait(), "rank %d: %s", r, p.stderr.String())
		for other, q := range ranks {
			assert.Contains(t, string(out), fmt.Sprintf("rank %d saw rank %d: pid %d", r, other, q.cmd.Process.Pid))
		}
	}
}

// TestLostProcessEndsTheOthers: a rank killed with SIGKILL, or stopped with SIGSTOP (alive but
// silent), ends the other rank with an error naming it, within the heartbeat timeout.
func TestLostProcessEndsTheOthers(t *testing.T) {
	const heartbeat = 1500 * time.Millisecond
	for _, tc := range []struct {
		name   string
		victim int
		signal syscall.Signal
		want   []string
	}{
		{"SIGKILL rank 1", 1, syscall.SIGKILL, []string{"rank 0 ends: multi-host job failed: rank 1 (", "is lost: its connection to the coordinator closed"}},
		{"SIGKILL rank 0", 0, syscall.SIGKILL, []string{"rank 1 ends: multi-host job failed: rank 0 (the coordinator at 127.0.0.1:", "is lost"}},
		{"SIGSTOP rank 1", 1, syscall.SIGSTOP, []string{"rank 0 ends: multi-host job failed: rank 1 (", "is lost: no heartbeat for"}},
		{"SIGSTOP rank 0", 0, syscall.SIGSTOP, []string{"rank 1 ends: multi-host job failed: rank 0 (the coordinator at 127.0.0.1:", "did not answer a heartbeat within 1.5s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := testenv.FreePort(t)
			ranks := []*rankProcess{startRank(t, "wait", 0, 2, port, heartbeat), startRank(t, "wait", 1, 2, port, heartbeat)}
			for _, p := range ranks {
				p.waitLine(t, "joined")
			}
			require.NoError(t, ranks[tc.victim].cmd.Process.Signal(tc.signal))
			survivor := ranks[1-tc.victim]
			code, took := survivor.exit(t, 4*heartbeat+5*time.Second)
			assert.Equal(t, helperExitFailed, code, survivor.stderr.String())
			for _, w := range tc.want {
				assert.Contains(t, survivor.stderr.String(), w)
			}
			t.Logf("%s: the other rank ended after %s: %s", tc.name, took.Round(time.Millisecond), strings.TrimSpace(survivor.stderr.String()))
		})
	}
}
