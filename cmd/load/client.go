package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// requestTimeout bounds one request, so a stuck answer cannot hold the run past its end.
const requestTimeout = 15 * time.Second

// client talks to one origin and records every answer in stats.
type client struct {
	origin string // scheme://host:port, nothing after
	http   *http.Client
	stats  *recorder // nil records nothing: setup is not part of the measurement
}

// newClient keeps up to conns connections alive, one per concurrent caller, so the run
// measures requests rather than TCP handshakes.
func newClient(origin string, conns int, stats *recorder) *client {
	return &client{
		origin: origin,
		stats:  stats,
		http: &http.Client{
			Timeout: requestTimeout,
			Transport: &http.Transport{
				// No proxy from the environment: traffic goes to the origin and nowhere else.
				Proxy:               nil,
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
				MaxIdleConns:        conns,
				MaxIdleConnsPerHost: conns,
				IdleConnTimeout:     90 * time.Second,
			},
			// A redirect is an answer to record, never a hop to another host.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// unrecorded answers a client that shares c's connections but records nothing.
func (c *client) unrecorded() *client {
	u := *c
	u.stats = nil
	return &u
}

// A call is one request to make.
type call struct {
	route   route
	params  []string // fill the route's placeholders, in order
	body    any      // sent as JSON unless nil
	idemKey string   // Idempotency-Key, unless empty
	as      *session // the tenant whose access token authenticates the call, refreshed on 401
	bearer  string   // or a fixed token (the operator's)
	out     any      // a 2xx JSON answer is decoded into it
}

// An answer is what came back. Bodies are read only where someone needs them: the caller's
// out, and the problem code of 429s (rate_limited or quota_exceeded, which the statistics
// tell apart) and 5xx (payments stop on payment_provider_unavailable). A caller that passes
// out also gets the problem of any error answer, for its error messages.
type answer struct {
	status int
	code   string
	detail string
	header http.Header
}

func (a answer) String() string {
	if a.code == "" {
		return fmt.Sprintf("%d %s", a.status, http.StatusText(a.status))
	}
	return fmt.Sprintf("%d %s: %s", a.status, a.code, a.detail)
}

// do sends the call. On a 401 with a session, whose access tokens live 15 minutes, it
// refreshes the session and tries once more. The error is a transport or encoding error;
// every status, 4xx and 5xx included, is an answer.
func (c *client) do(ctx context.Context, cl call) (answer, error) {
	var body []byte
	if cl.body != nil {
		var err error
		if body, err = json.Marshal(cl.body); err != nil {
			return answer{}, err
		}
	}
	token := cl.bearer
	if cl.as != nil {
		token = cl.as.accessToken()
	}
	a, err := c.send(ctx, cl, body, token)
	if err != nil || a.status != http.StatusUnauthorized || cl.as == nil {
		return a, err
	}
	fresh, err := cl.as.renew(ctx, c, token)
	if err != nil {
		return a, nil // the 401 stands; the failed refresh is in the statistics itself
	}
	return c.send(ctx, cl, body, fresh)
}

func (c *client) send(ctx context.Context, cl call, body []byte, token string) (answer, error) {
	target := c.origin + cl.route.path(cl.params...)
	req, err := http.NewRequestWithContext(ctx, cl.route.method(), target, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if cl.idemKey != "" {
		req.Header.Set("Idempotency-Key", cl.idemKey)
	}

	start := time.Now()
	res, err := c.http.Do(req)
	if err != nil {
		c.failed(ctx, cl.route)
		return answer{}, err
	}
	defer res.Body.Close()
	a := answer{status: res.StatusCode, header: res.Header}
	var decodeErr error
	switch {
	case res.StatusCode/100 == 2 && cl.out != nil:
		decodeErr = json.NewDecoder(res.Body).Decode(cl.out)
	case res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500 ||
		(res.StatusCode >= 400 && cl.out != nil):
		a.code, a.detail = readProblem(res.Body)
	}
	// Reading to the end lets the connection be reused, and counts in the latency as it
	// would for any client that uses the answer.
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		c.failed(ctx, cl.route)
		return answer{}, err
	}
	c.stats.record(cl.route, a.status, a.code, time.Since(start))
	return a, decodeErr
}

// failed records a transport error, unless the run itself was interrupted: a request cut
// short by Ctrl-C says nothing about the service.
func (c *client) failed(ctx context.Context, r route) {
	if ctx.Err() == nil {
		c.stats.fail(r)
	}
}

// readProblem reads the code and detail of an RFC 9457 problem; a body of another shape
// (OFREP answers in its own) gives empty strings.
func readProblem(body io.Reader) (code, detail string) {
	var p struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	json.NewDecoder(io.LimitReader(body, 64<<10)).Decode(&p)
	return p.Code, p.Detail
}
