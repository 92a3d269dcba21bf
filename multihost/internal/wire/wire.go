package wire

import "time"

// Service is the rpc service name the coordinator registers.
const Service = "Rendezvous"

type (
	// JoinArgs registers a rank and waits up to Timeout for all Nodes ranks.
	JoinArgs struct {
		Rank, Nodes int
		Host        string
		Timeout     time.Duration
	}
	// PutArgs stores Value under Key.
	PutArgs struct {
		Key   string
		Value []byte
	}
	// GetArgs waits up to Timeout for Key (0: do not wait).
	GetArgs struct {
		Key     string
		Timeout time.Duration
	}
	// GetReply is Key's value when Found.
	GetReply struct {
		Value []byte
		Found bool
	}
	// AbortArgs ends the job with the calling rank's reason.
	AbortArgs struct{ Reason string }
	// None is an empty argument or reply.
	None struct{}
)

// Failure is Watch's reply: whether the job failed, and because of which rank.
type Failure struct {
	Failed bool
	Rank   int
	Reason string
}
