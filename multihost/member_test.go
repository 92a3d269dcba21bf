package multihost_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/internal/testenv"
	"handbook/multihost"
)

func world(nodes, rank, port int) multihost.World {
	return multihost.World{Nodes: nodes, Rank: rank, Coordinator: fmt.Sprintf("127.0.0.1:%d", port)}
}

// joinAll joins ranks 0..nodes-1 concurrently and returns the members in rank order.
func joinAll(t *testing.T, nodes int, opts multihost.Options) []*multihost.Member {
	t.Helper()
	port := testenv.FreePort(t)
	members := make([]*multihost.Member, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for r := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			members[r], errs[r] = multihost.Join(context.Background(), world(nodes, r, port), opts)
		}()
	}
	wg.Wait()
	for r, err := range errs {
		require.NoError(t, err, "rank %d", r)
	}
	return members
}

// closeAll closes the members, rank 0 last as a real job would (it waits for the others anyway).
func closeAll(t *testing.T, members []*multihost.Member) {
	var wg sync.WaitGroup
	for r := len(members) - 1; r >= 0; r-- {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, members[r].Close(), "rank %d", r)
		}()
	}
	wg.Wait()
}

func TestKeyValueStore(t *testing.T) {
	members := joinAll(t, 3, multihost.Options{})
	defer closeAll(t, members)

	// A blocking Get returns once another rank puts the key.
	got := make(chan []byte, 1)
	go func() {
		v, err := members[2].Get("topology/0", 5*time.Second)
		assert.NoError(t, err)
		got <- v
	}()
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, members[0].Put("topology/0", []byte("rank0:2 devices")))
	assert.Equal(t, []byte("rank0:2 devices"), <-got)

	v, ok, err := members[1].TryGet("topology/0")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, []byte("rank0:2 devices"), v)
	_, ok, err = members[1].TryGet("absent")
	require.NoError(t, err)
	assert.False(t, ok)

	start := time.Now()
	_, err = members[1].Get("absent", 200*time.Millisecond)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), err)
	assert.Contains(t, err.Error(), `key "absent" was not set within 200ms`)
	assert.Less(t, time.Since(start), 2*time.Second)
	for _, m := range members {
		assert.NoError(t, m.Err())
	}
}

func TestJoinErrors(t *testing.T) {
	t.Run("a rank never arrives", func(t *testing.T) {
		port := testenv.FreePort(t)
		start := time.Now()
		_, err := multihost.Join(context.Background(), world(3, 0, port), multihost.Options{JoinTimeout: 300 * time.Millisecond})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "rank(s) 1, 2 of 3 did not join within")
		assert.Contains(t, err.Error(), "joined: 0 on")
		assert.Less(t, time.Since(start), 3*time.Second)
	})
	t.Run("no coordinator", func(t *testing.T) {
		port := testenv.FreePort(t)
		_, err := multihost.Join(context.Background(), world(2, 1, port), multihost.Options{JoinTimeout: 300 * time.Millisecond})
		require.Error(t, err)
		assert.Contains(t, err.Error(), fmt.Sprintf("rank 1 could not reach the coordinator (rank 0) at 127.0.0.1:%d within 300ms", port))
		assert.Contains(t, err.Error(), "connection refused")
	})
	t.Run("rank given twice and disagreeing num_machines", func(t *testing.T) {
		port := testenv.FreePort(t)
		opts := multihost.Options{JoinTimeout: time.Second}
		waiting := make(chan error, 2)
		for _, r := range []int{0, 1} { // they wait for rank 2, which never comes
			go func() {
				_, err := multihost.Join(context.Background(), world(3, r, port), opts)
				waiting <- err
			}()
		}
		time.Sleep(200 * time.Millisecond)
		_, err := multihost.Join(context.Background(), world(3, 1, port), opts)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "rank 1 joined twice")
		_, err = multihost.Join(context.Background(), world(4, 2, port), opts)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "rank 2 (")
		assert.Contains(t, err.Error(), "says num_machines is 4, rank 0 says 3")
		// A second rank 0 on the same host cannot serve the coordinator's port.
		_, err = multihost.Join(context.Background(), world(3, 0, port), opts)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "rank 0 cannot serve the rendezvous")
		for range 2 {
			assert.Error(t, <-waiting)
		}
	})
}

func TestAbortNamesTheRank(t *testing.T) {
	failures := make(chan error, 3)
	opts := multihost.Options{OnFailure: func(err error) { failures <- err }}
	members := joinAll(t, 3, opts)
	members[1].Abort(errors.New("CUDA out of memory"))
	for range 3 {
		select {
		case err := <-failures:
			var pe *multihost.PeerError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, 1, pe.Rank)
			assert.Contains(t, err.Error(), "rank 1 failed: CUDA out of memory")
		case <-time.After(5 * time.Second):
			t.Fatal("a rank was not told of the abort")
		}
	}
	for r, m := range members {
		assert.ErrorIs(t, context.Cause(m.Context()), m.Err(), "rank %d", r)
		_, err := m.Get("anything", time.Second)
		assert.ErrorContains(t, err, "rank 1 failed", "rank %d", r)
	}
	err := members[0].Close()
	assert.ErrorContains(t, err, "rank 1 failed")
}
