package multihost

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"handbook/multihost/internal/wire"
)

// Options tune the rendezvous; zero values take the defaults.
type Options struct {
	// JoinTimeout bounds the wait for the coordinator to answer and for every rank to join
	// (default 5 minutes, jax.distributed's initialization_timeout).
	JoinTimeout time.Duration
	// HeartbeatInterval is how often a rank tells the coordinator it is alive (default 2s), and
	// HeartbeatTimeout how long a silent rank counts as lost (default 60s). A process that dies
	// is noticed at once (its connection closes); the heartbeat catches hung processes and
	// unreachable hosts.
	HeartbeatInterval, HeartbeatTimeout time.Duration
	// ShutdownTimeout bounds rank 0's Close, which waits for the other ranks to leave so their
	// last requests are served (default 5 minutes).
	ShutdownTimeout time.Duration
	// OnFailure, when set, is called once from a background goroutine when the job fails: a rank
	// was lost or aborted, or the coordinator was lost. A program that may be blocked in a
	// collective (which never returns once a peer is gone) ends the process there.
	OnFailure func(error)
}

func (o Options) withDefaults() Options {
	if o.JoinTimeout <= 0 {
		o.JoinTimeout = 5 * time.Minute
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = 2 * time.Second
	}
	if o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = time.Minute
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 5 * time.Minute
	}
	return o
}

// PeerError is why a multi-host job failed: the rank that was lost or aborted, in words.
type PeerError struct {
	Rank   int
	Reason string
}

func (e *PeerError) Error() string { return "multi-host job failed: " + e.Reason }

// Member is one rank's membership of a job: the key-value store every rank shares, and the
// failure watch. Its methods are safe for concurrent use (PJRT calls the store from its own
// threads).
type Member struct {
	World World

	opts    Options
	client  *rpc.Client
	coord   *coordinator // rank 0 only
	ctx     context.Context
	cancel  context.CancelCauseFunc
	failure atomic.Pointer[PeerError]
	once    sync.Once
	closing atomic.Bool
	stop    chan struct{}
}

// Join makes this process rank w.Rank of the job: rank 0 serves the rendezvous on
// w.Coordinator's port, every rank (0 included) connects to it and waits until all w.Nodes ranks
// have joined. Errors name what is missing: the coordinator that does not answer, the ranks that
// never arrived, a rank given twice, disagreeing num_machines.
func Join(ctx context.Context, w World, opts Options) (*Member, error) {
	opts = opts.withDefaults()
	host, _ := os.Hostname()
	m := &Member{World: w, opts: opts, stop: make(chan struct{})}
	m.ctx, m.cancel = context.WithCancelCause(context.Background())
	if w.Rank == 0 {
		_, port, err := net.SplitHostPort(w.Coordinator)
		if err != nil {
			return nil, fmt.Errorf("rendezvous: coordinator address %q: %w", w.Coordinator, err)
		}
		if m.coord, err = serveCoordinator(":"+port, w.Nodes, opts.HeartbeatTimeout); err != nil {
			return nil, fmt.Errorf("rendezvous: %w", err)
		}
	}
	deadline := time.Now().Add(opts.JoinTimeout)
	conn, err := dialUntil(ctx, w.Coordinator, deadline)
	if err != nil {
		m.shutdown()
		return nil, fmt.Errorf("rendezvous: rank %d could not reach the coordinator (rank 0) at %s within %s: %w; start rank 0 and give every node the same main_process_ip and main_process_port",
			w.Rank, w.Coordinator, opts.JoinTimeout, err)
	}
	m.client = rpc.NewClient(conn)
	join := wire.JoinArgs{Rank: w.Rank, Nodes: w.Nodes, Host: host, Timeout: time.Until(deadline)}
	if err := m.call(ctx, "Join", join, &wire.None{}); err != nil {
		m.shutdown()
		return nil, fmt.Errorf("rendezvous: rank %d of %d at %s: %w", w.Rank, w.Nodes, w.Coordinator, err)
	}
	go m.heartbeat()
	go m.watch()
	return m, nil
}

func dialUntil(ctx context.Context, addr string, deadline time.Time) (net.Conn, error) {
	wait := 50 * time.Millisecond
	for {
		d := net.Dialer{Timeout: max(time.Until(deadline), time.Millisecond)}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return conn, nil
		}
		if ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// call runs one rpc, giving up when ctx ends; a failure the job already knows wins over the
// rpc's own error.
func (m *Member) call(ctx context.Context, method string, args, reply any) error {
	c := m.client.Go(wire.Service+"."+method, args, reply, make(chan *rpc.Call, 1))
	var err error
	select {
	case <-c.Done:
		err = c.Error
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		if f := m.failure.Load(); f != nil {
			return f
		}
		var se rpc.ServerError
		if errors.As(err, &se) {
			return errors.New(string(se))
		}
	}
	return err
}

func (m *Member) heartbeat() {
	t := time.NewTicker(m.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), m.opts.HeartbeatTimeout)
			err := m.call(ctx, "Heartbeat", wire.None{}, &wire.None{}) // other failures reach watch
			cancel()
			if errors.Is(err, context.DeadlineExceeded) && !m.closing.Load() {
				m.fail(&PeerError{Rank: 0, Reason: fmt.Sprintf("rank 0 (the coordinator at %s) is lost: it did not answer a heartbeat within %s (the process hangs or its host is unreachable)",
					m.World.Coordinator, m.opts.HeartbeatTimeout)})
			}
		}
	}
}

// watch waits for the coordinator to report a failure or the end of the job.
func (m *Member) watch() {
	var f wire.Failure
	err := m.client.Call(wire.Service+".Watch", wire.None{}, &f)
	switch {
	case m.closing.Load() && !f.Failed:
	case err != nil:
		m.fail(&PeerError{Rank: 0, Reason: fmt.Sprintf("rank 0 (the coordinator at %s) is lost: %v", m.World.Coordinator, err)})
	case f.Failed:
		m.fail(&PeerError{Rank: f.Rank, Reason: f.Reason})
	}
}

func (m *Member) fail(e *PeerError) {
	m.once.Do(func() {
		m.failure.Store(e)
		m.cancel(e)
		if m.opts.OnFailure != nil {
			m.opts.OnFailure(e)
		}
	})
}

// Context is cancelled when the job fails (context.Cause gives the *PeerError) or the member
// closes.
func (m *Member) Context() context.Context { return m.ctx }

// Err is the job's failure, or nil.
func (m *Member) Err() error {
	if f := m.failure.Load(); f != nil {
		return f
	}
	return nil
}

// Put stores value under key for every rank.
func (m *Member) Put(key string, value []byte) error {
	if err := m.call(m.ctx, "Put", wire.PutArgs{Key: key, Value: value}, &wire.None{}); err != nil {
		return fmt.Errorf("rendezvous: put %q: %w", key, err)
	}
	return nil
}

// Get waits up to timeout for key; the error wraps context.DeadlineExceeded when it was not set
// in time.
func (m *Member) Get(key string, timeout time.Duration) ([]byte, error) {
	var r wire.GetReply
	if err := m.call(m.ctx, "Get", wire.GetArgs{Key: key, Timeout: timeout}, &r); err != nil {
		return nil, fmt.Errorf("rendezvous: get %q: %w", key, err)
	}
	if !r.Found {
		return nil, fmt.Errorf("rendezvous: key %q was not set within %s: %w", key, timeout, context.DeadlineExceeded)
	}
	return r.Value, nil
}

// TryGet returns key's value and true, or false at once when it is not set.
func (m *Member) TryGet(key string) ([]byte, bool, error) {
	var r wire.GetReply
	if err := m.call(m.ctx, "Get", wire.GetArgs{Key: key}, &r); err != nil {
		return nil, false, fmt.Errorf("rendezvous: get %q: %w", key, err)
	}
	return r.Value, r.Found, nil
}

// Abort ends the job for every rank with this rank's reason (the error it is exiting with).
func (m *Member) Abort(reason error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = m.call(ctx, "Abort", wire.AbortArgs{Reason: reason.Error()}, &wire.None{})
}

// Close leaves the job. Rank 0 waits (up to ShutdownTimeout) for the other ranks to leave before
// it stops serving; its error then says which ranks did not.
func (m *Member) Close() error {
	if !m.closing.CompareAndSwap(false, true) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := m.call(ctx, "Leave", wire.None{}, &wire.None{})
	cancel()
	if err == nil && m.coord != nil {
		err = m.coord.waitAllLeft(time.Now().Add(m.opts.ShutdownTimeout))
	}
	m.shutdown()
	if err != nil {
		return fmt.Errorf("rendezvous: rank %d leaving: %w", m.World.Rank, err)
	}
	return nil
}

func (m *Member) shutdown() {
	m.closing.Store(true)
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	if m.client != nil {
		m.client.Close()
	}
	if m.coord != nil {
		m.coord.close()
	}
	m.cancel(nil)
}

// String names the member for logs: "rank 1 of 2 (coordinator host:29500)".
func (m *Member) String() string {
	return "rank " + strconv.Itoa(m.World.Rank) + " of " + strconv.Itoa(m.World.Nodes) + " (coordinator " + m.World.Coordinator + ")"
}
