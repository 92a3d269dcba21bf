package multihost

import (
	"fmt"
	"net"
	"net/rpc"
	"sort"
	"strings"
	"sync"
	"time"

	"handbook/multihost/internal/wire"
)

// coordinator is the rendezvous rank 0 serves: the job's key-value store, the join barrier, and
// the failure detector. It is served with net/rpc, one rpc.Server per connection so each
// connection knows the rank it belongs to and a closed connection names the rank that left.
type coordinator struct {
	nodes            int
	heartbeatTimeout time.Duration
	ln               net.Listener
	stopped          chan struct{} // closed when rank 0 stops serving

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change: the waiters' broadcast
	kv       map[string][]byte
	ranks    map[int]*peer
	failure  *PeerError // set once: why the job failed
	finished bool       // every rank has left
}

type peer struct {
	host         string
	lastSeen     time.Time
	left         bool
	disconnected bool
}

func serveCoordinator(addr string, nodes int, heartbeatTimeout time.Duration) (*coordinator, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rank 0 cannot serve the rendezvous on %s: %w", addr, err)
	}
	c := &coordinator{nodes: nodes, heartbeatTimeout: heartbeatTimeout, ln: ln, stopped: make(chan struct{}),
		changed: make(chan struct{}), kv: map[string][]byte{}, ranks: map[int]*peer{}}
	go c.accept()
	go c.watchHeartbeats()
	return c, nil
}

func (c *coordinator) accept() {
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return // listener closed
		}
		go c.serve(conn)
	}
}

// serve runs one connection's rpc session. The connection's end is noticed when a read fails,
// not when ServeConn returns (which first waits for the calls in flight, such as Watch).
func (c *coordinator) serve(conn net.Conn) {
	s := &session{c: c, rank: -1}
	srv := rpc.NewServer()
	if err := srv.RegisterName(wire.Service, s); err != nil {
		conn.Close()
		return
	}
	srv.ServeConn(&closeNotifier{Conn: conn, onClose: func() { c.disconnected(s) }})
}

// disconnected records that a session's connection ended: a rank that had not left is lost.
func (c *coordinator) disconnected(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.ranks[s.rank]
	if p == nil {
		return
	}
	p.disconnected = true
	if !p.left {
		c.failLocked(s.rank, fmt.Sprintf("rank %d (%s) is lost: its connection to the coordinator closed before it left the job (the process died or was killed)", s.rank, p.host))
	}
	c.broadcastLocked()
}

// closeNotifier calls onClose once, at the first failed read.
type closeNotifier struct {
	net.Conn
	once    sync.Once
	onClose func()
}

func (n *closeNotifier) Read(b []byte) (int, error) {
	k, err := n.Conn.Read(b)
	if err != nil {
		n.once.Do(n.onClose)
	}
	return k, err
}

// broadcastLocked wakes every waiter; c.mu must be held.
func (c *coordinator) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *coordinator) failLocked(rank int, reason string) {
	if c.failure != nil || c.finished {
		return
	}
	c.failure = &PeerError{Rank: rank, Reason: reason}
	c.broadcastLocked()
}

// waitLocked waits until cond() holds, the job fails, or the deadline passes; c.mu is held on
// entry and on return. It reports whether cond() holds.
func (c *coordinator) waitLocked(deadline time.Time, cond func() bool) bool {
	for !cond() && c.failure == nil {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		ch := c.changed
		c.mu.Unlock()
		timer := time.NewTimer(left)
		select {
		case <-ch:
		case <-timer.C:
		}
		timer.Stop()
		c.mu.Lock()
	}
	return cond()
}

func (c *coordinator) watchHeartbeats() {
	tick := max(c.heartbeatTimeout/4, 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-c.stopped:
			return
		case <-t.C:
		}
		c.mu.Lock()
		if c.failure != nil || c.finished {
			c.mu.Unlock()
			return
		}
		if len(c.ranks) < c.nodes { // still joining: Join's timeout applies
			c.mu.Unlock()
			continue
		}
		for _, r := range c.sortedRanksLocked() {
			p := c.ranks[r]
			if silent := time.Since(p.lastSeen); !p.left && silent > c.heartbeatTimeout {
				c.failLocked(r, fmt.Sprintf("rank %d (%s) is lost: no heartbeat for %s (limit %s; the process hangs or its host is unreachable)",
					r, p.host, silent.Round(time.Millisecond), c.heartbeatTimeout))
				break
			}
		}
		c.mu.Unlock()
	}
}

func (c *coordinator) sortedRanksLocked() []int {
	ranks := make([]int, 0, len(c.ranks))
	for r := range c.ranks {
		ranks = append(ranks, r)
	}
	sort.Ints(ranks)
	return ranks
}

func (c *coordinator) failureErr() error {
	return c.failure
}

// waitAllLeft waits (rank 0's Close) until every rank has left, the job failed, or the deadline.
func (c *coordinator) waitAllLeft(deadline time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// A rank is done once it has left and, except rank 0 itself, closed its connection: it
	// has then read the reply to its Leave.
	allLeft := func() bool {
		for r := 0; r < c.nodes; r++ {
			if p := c.ranks[r]; p != nil && (!p.left || (r != 0 && !p.disconnected)) {
				return false
			}
		}
		return true
	}
	if !c.waitLocked(deadline, allLeft) {
		if c.failure != nil {
			return c.failureErr()
		}
		var missing []string
		for r := 0; r < c.nodes; r++ {
			if p := c.ranks[r]; p != nil && !p.left {
				missing = append(missing, fmt.Sprint(r))
			}
		}
		return fmt.Errorf("rank(s) %s did not finish within the shutdown timeout", strings.Join(missing, ", "))
	}
	c.finished = true
	c.broadcastLocked()
	return nil
}

func (c *coordinator) close() {
	close(c.stopped)
	c.ln.Close()
}

// session is one connection's rpc receiver.
type session struct {
	c    *coordinator
	rank int // set by Join, under c.mu
}

// Join registers the connection's rank and waits until every rank has joined.
func (s *session) Join(a wire.JoinArgs, _ *wire.None) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failure != nil {
		return c.failureErr()
	}
	if a.Nodes != c.nodes {
		return fmt.Errorf("rank %d (%s) says num_machines is %d, rank 0 says %d: every node must be given the same num_machines", a.Rank, a.Host, a.Nodes, c.nodes)
	}
	if a.Rank < 0 || a.Rank >= c.nodes {
		return fmt.Errorf("machine_rank %d of %s is outside [0, %d)", a.Rank, a.Host, c.nodes)
	}
	if p := c.ranks[a.Rank]; p != nil {
		return fmt.Errorf("rank %d joined twice, from %s and from %s: give every node its own machine_rank", a.Rank, p.host, a.Host)
	}
	s.rank = a.Rank
	c.ranks[a.Rank] = &peer{host: a.Host, lastSeen: time.Now()}
	if len(c.ranks) == c.nodes { // heartbeats are due from now on
		for _, p := range c.ranks {
			p.lastSeen = time.Now()
		}
	}
	c.broadcastLocked()
	if c.waitLocked(time.Now().Add(a.Timeout), func() bool { return len(c.ranks) == c.nodes }) {
		return nil
	}
	if c.failure != nil {
		return c.failureErr()
	}
	var missing []string
	for r := 0; r < c.nodes; r++ {
		if c.ranks[r] == nil {
			missing = append(missing, fmt.Sprint(r))
		}
	}
	return fmt.Errorf("rank(s) %s of %d did not join within %s (joined: %s); start every node, with the same main_process_ip/port and num_machines",
		strings.Join(missing, ", "), c.nodes, a.Timeout, c.joinedLocked())
}

func (c *coordinator) joinedLocked() string {
	var parts []string
	for _, r := range c.sortedRanksLocked() {
		parts = append(parts, fmt.Sprintf("%d on %s", r, c.ranks[r].host))
	}
	return strings.Join(parts, ", ")
}

// Put stores a value.
func (s *session) Put(a wire.PutArgs, _ *wire.None) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failure != nil {
		return c.failureErr()
	}
	c.kv[a.Key] = a.Value
	c.broadcastLocked()
	return nil
}

// Get waits up to a.Timeout for a key.
func (s *session) Get(a wire.GetArgs, r *wire.GetReply) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	has := func() bool { _, ok := c.kv[a.Key]; return ok }
	if !c.waitLocked(time.Now().Add(a.Timeout), has) {
		if c.failure != nil {
			return c.failureErr()
		}
		return nil // not found in time: Found stays false
	}
	r.Value, r.Found = c.kv[a.Key], true
	return nil
}

// Heartbeat records that the rank is alive.
func (s *session) Heartbeat(_ wire.None, _ *wire.None) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.ranks[s.rank]; p != nil {
		p.lastSeen = time.Now()
	}
	if c.failure != nil {
		return c.failureErr()
	}
	return nil
}

// Watch returns when the job has failed (r.Failed, naming the rank) or every rank has left.
func (s *session) Watch(_ wire.None, r *wire.Failure) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waitLocked(time.Now().Add(100*365*24*time.Hour), func() bool { return c.finished })
	if c.failure != nil {
		*r = wire.Failure{Failed: true, Rank: c.failure.Rank, Reason: c.failure.Reason}
	}
	return nil
}

// Abort ends the job for everyone, with the calling rank's reason.
func (s *session) Abort(a wire.AbortArgs, _ *wire.None) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failLocked(s.rank, fmt.Sprintf("rank %d failed: %s", s.rank, a.Reason))
	return nil
}

// Leave marks the rank as finished: its connection may close without failing the job.
func (s *session) Leave(_ wire.None, _ *wire.None) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.ranks[s.rank]; p != nil {
		p.left = true
		c.broadcastLocked()
	}
	return nil
}
