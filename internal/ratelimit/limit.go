package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"net/netip"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/ids"
)

// Scope is whose budget a limit is, and the Redis Cluster hash tag of its keys. Every limit
// of one decision must share it, so the script runs on a single slot.
type Scope string

// Tenant is the scope of a tenant's limits: {t:<id>}.
func Tenant(id uuid.UUID) Scope {
	// "t:" and the uuid's text, built in one allocation rather than two.
	var b [2 + 36]byte
	b[0], b[1] = 't', ':'
	ids.AppendUUID(b[2:2], id)
	return Scope(b[:])
}

// ClientAddr is the scope of an unauthenticated client's limits: {ip:<addr>}. An IPv6
// address is limited by its /64, the block a single subscriber is usually given, so that
// walking through one's own block does not walk around the limit.
func ClientAddr(a netip.Addr) Scope {
	a = a.Unmap()
	switch {
	case !a.IsValid():
		return "ip:unknown"
	case a.Is6():
		return Scope("ip:" + netip.PrefixFrom(a, 64).Masked().String())
	}
	return Scope("ip:" + a.String())
}

// FailureMode says how a limit is decided when Redis cannot answer in time.
type FailureMode uint8

const (
	FailDefault FailureMode = iota // the limiter's Options.FailureMode
	FailOpen                       // decide in the replica's own limiter
	FailClosed                     // deny
)

// Limit is one budget a request spends from.
type Limit struct {
	Scope  Scope  // whose budget: Tenant(id) or ClientAddr(a)
	Policy string // the name clients see in the headers and in a denial: "tenant", "key", "writes"
	ID     string // which bucket of the policy within the scope: a key or user id; "" for the scope's own

	Rate          float64 // requests per second refilled
	Burst         int     // the most requests allowed at once
	MaxConcurrent int     // the most requests in flight; 0 for no cap
	Cost          int     // what this request spends; 0 means 1

	Failure FailureMode // how to decide without Redis; one limit failing closed closes the whole decision
}

// FromRateLimit is the Limit of a plan's, an override's or an API key's rate limit.
func FromRateLimit(scope Scope, policy, id string, rl auth.RateLimit) Limit {
	return Limit{
		Scope: scope, Policy: policy, ID: id,
		Rate: rl.RequestsPerSecond, Burst: rl.Burst, MaxConcurrent: rl.MaxConcurrent,
	}
}

// ErrInvalidLimit is a limit no request can satisfy or no key can hold: a configuration
// error, reported as such rather than answered with an endless 429.
var ErrInvalidLimit = errors.New("ratelimit: invalid limit")

const (
	maxLimits = 8    // per decision; a request has a handful
	maxPolicy = 64   // characters of a policy name
	perSecond = 1e6  // microseconds
	maxTau    = 1e14 // µs (three years) of capacity: keeps now+τ far below 2^53, Lua's exact integers
)

// params is a limit in the script's units: whole microseconds and whole tokens.
type params struct {
	interval int64 // µs between two tokens
	burst    int64
	cost     int64
	maxConc  int64
}

// tau is the bucket's capacity in time: how long an empty bucket takes to fill.
func (p params) tau() int64 { return p.interval * p.burst }

func (l Limit) params() (params, error) {
	if l.Policy == "" || len(l.Policy) > maxPolicy || !isPolicyName(l.Policy) {
		return params{}, fmt.Errorf("%w: policy %q must be 1 to %d of a-z 0-9 _ . -", ErrInvalidLimit, l.Policy, maxPolicy)
	}
	if !isScope(l.Scope) {
		return params{}, fmt.Errorf("%w: policy %q: scope %q must be non-empty, without { or }", ErrInvalidLimit, l.Policy, l.Scope)
	}
	interval, bad := budget(l.Rate, l.Burst, l.MaxConcurrent)
	if len(bad) > 0 {
		return params{}, fmt.Errorf("%w: policy %q: %s %s", ErrInvalidLimit, l.Policy, bad[0].Field, bad[0].Message)
	}
	cost := l.Cost
	if cost == 0 {
		cost = 1
	}
	switch {
	case cost < 1 || cost > l.Burst:
		return params{}, fmt.Errorf("%w: policy %q: cost %d must be from 1 to the burst, %d", ErrInvalidLimit, l.Policy, cost, l.Burst)
	case l.Failure > FailClosed:
		return params{}, fmt.Errorf("%w: policy %q: unknown failure mode %d", ErrInvalidLimit, l.Policy, l.Failure)
	}
	return params{
		interval: interval,
		burst:    int64(l.Burst),
		cost:     int64(cost),
		maxConc:  int64(l.MaxConcurrent),
	}, nil
}

// budget is the rule for a budget's numbers, the one both Allow and CheckRateLimit apply: it
// answers the interval between two tokens in µs, or every member at fault, named as in
// auth.RateLimit's JSON.
func budget(rate float64, burst, maxConcurrent int) (int64, errs.Fields) {
	var bad errs.Fields
	if !(rate > 0) || math.IsInf(rate, 1) {
		bad.Add("requests_per_second", "must be a positive number")
	}
	switch {
	case burst < 1:
		bad.Add("burst", "must be at least 1")
	case float64(burst) > maxTau: // too large even at the fastest rate
		bad.Add("burst", fmt.Sprintf("must be at most %d", int64(maxTau)))
	}
	if maxConcurrent < 0 {
		bad.Add("max_concurrent", "must not be negative")
	}
	if len(bad) > 0 {
		return 0, bad
	}
	// Faster than a million a second is a million a second: the interval is whole µs.
	interval := max(math.Round(perSecond/rate), 1)
	if interval*float64(burst) > maxTau {
		bad.Add("requests_per_second", fmt.Sprintf("is too low: at %v a second, a burst of %d takes longer than three years to refill", rate, burst))
		return 0, bad
	}
	return int64(interval), nil
}

// CheckRateLimit reports whether the limiter can hold rl, by the rule Allow applies to every
// limit. A limit taken from a client must pass it when it is given: stored unchecked, it
// would fail every request that spends from it. field is where rl sits in the request
// ("rate_limit"); the error is a validation error naming each member at fault under it
// ("rate_limit.requests_per_second").
func CheckRateLimit(field string, rl auth.RateLimit) error {
	_, bad := budget(rl.RequestsPerSecond, rl.Burst, rl.MaxConcurrent)
	for i := range bad {
		bad[i].Field = field + "." + bad[i].Field
	}
	return bad.Err()
}

// isPolicyName keeps policy names safe in a structured-field string and unambiguous inside
// a Redis key.
func isPolicyName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// isScope refuses braces: Redis Cluster hashes the first {...} of a key, so a brace in the
// scope would split the tenant's keys across slots.
func isScope(s Scope) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '{' || s[i] == '}' {
			return false
		}
	}
	return true
}
