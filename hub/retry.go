package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy is how requests that failed for a transient reason (429, 500, 502, 503, 504, or no
// answer at all) are tried again: after BaseWait, doubling up to MaxWait, at most MaxRetries
// times; a Retry-After header in seconds takes precedence. The zero value is huggingface_hub's
// http_backoff: 5 retries, 1 s doubling to 8 s.
type RetryPolicy struct {
	MaxRetries        int
	BaseWait, MaxWait time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxRetries <= 0 {
		p.MaxRetries = 5
	}
	if p.BaseWait <= 0 {
		p.BaseWait = time.Second
	}
	if p.MaxWait <= 0 {
		p.MaxWait = 8 * time.Second
	}
	return p
}

var transientStatus = []int{http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
	http.StatusServiceUnavailable, http.StatusGatewayTimeout}

// request is one call of the upload API.
type request struct {
	method, url string
	body        body
	header      http.Header
	retry       bool  // retry transient failures
	retryOnly   []int // when set, the only statuses retried (and no retry without an answer)
	accept      []int // non-2xx statuses handed back to the caller instead of an error
	noAuth      bool  // pre-signed storage URLs get no token
}

// send performs r, retrying as c.Retry says, and returns a response whose status is 2xx or one
// of r.accept; any other status becomes an error naming op.
func (c *Client) send(ctx context.Context, op string, r request) (*http.Response, error) {
	policy := c.Retry.withDefaults()
	wait := policy.BaseWait
	for attempt := 0; ; attempt++ {
		resp, err := c.attempt(ctx, r)
		retryable := false
		var pause time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, fmt.Errorf("hub: %s: %w", op, ctx.Err())
			}
			retryable = r.retry && r.retryOnly == nil
			err = fmt.Errorf("hub: %s: %w", op, err)
		case acceptedStatus(resp.StatusCode, r.accept):
			return resp, nil
		default:
			codes := transientStatus
			if r.retryOnly != nil {
				codes = r.retryOnly
			}
			retryable = r.retry && slices.Contains(codes, resp.StatusCode)
			if s, perr := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); perr == nil && s >= 0 {
				pause = time.Duration(s) * time.Second
			}
			err = uploadError(op, resp)
			resp.Body.Close()
		}
		if !retryable || attempt >= policy.MaxRetries {
			return nil, err
		}
		if pause == 0 {
			pause = wait
			wait = min(policy.MaxWait, 2*wait)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (gave up retrying: %w)", err, ctx.Err())
		case <-time.After(pause):
		}
	}
}

func (c *Client) attempt(ctx context.Context, r request) (*http.Response, error) {
	var in io.ReadCloser = http.NoBody
	var n int64
	if r.body != nil {
		var err error
		if in, n, err = r.body(); err != nil {
			return nil, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, in)
	if err != nil {
		in.Close()
		return nil, err
	}
	req.ContentLength = n
	for k, v := range r.header {
		req.Header[k] = v
	}
	if c.Token != "" && !r.noAuth {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	req.Header.Set("User-Agent", "handbook-go")
	return c.http().Do(req)
}

// uploadError explains a refused upload request: the status, what it means for a push, and the
// Hub's own message (X-Error-Message or the JSON body's "error").
func uploadError(op string, resp *http.Response) error {
	msg := resp.Header.Get("X-Error-Message")
	if msg == "" {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var body struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &body) == nil && body.Error != "" {
			msg = body.Error
		} else {
			msg = strings.TrimSpace(string(raw))
		}
	}
	var why string
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		why = "the token is missing or invalid (set HF_TOKEN, or hub_token in the recipe)"
	case http.StatusForbidden:
		why = "the token may not write here (a read-only token, or a namespace it has no rights in)"
	case http.StatusNotFound:
		why = "no such repository or branch, or the token cannot see it"
	case http.StatusConflict:
		why = "conflict with the repository's current state"
	case http.StatusRequestEntityTooLarge:
		why = "the Hub refused the request as too large"
	case http.StatusTooManyRequests:
		why = "rate limited by the Hub; retries are exhausted"
	}
	parts := []string{resp.Status}
	if why != "" {
		parts = append(parts, why)
	}
	if msg != "" {
		parts = append(parts, "the Hub says: "+msg)
	}
	return fmt.Errorf("hub: %s: %s", op, strings.Join(parts, "; "))
}
