// Package idempotency makes POST and PATCH safe to retry. A client sends an Idempotency-Key;
// the first request under it runs, and every later one with the same key and request gets
// the first one's answer, byte for byte, without running again.
//
// Keys are stored in PostgreSQL under the tenant's row-level security, scoped to (tenant,
// principal, key). Claiming a key is one atomic statement. Two modes:
//
//   - Atomic, for handlers whose effects are all in the database: the claim, the handler's
//     writes and the stored answer share one transaction, so they commit or vanish together.
//     A concurrent duplicate sees the key held and answers 409 at once.
//   - Phased, for handlers that call other systems (payments call Stripe): the claim commits
//     first, the handler records recovery points as it goes, each in the same transaction as
//     the work it marks, and no transaction is held across a remote call. A retry after a crash
//     resumes from the last recovery point.
package idempotency

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/saasbase/saasbase/internal/platform/errs"
)

// Header is the request header that carries the key.
const Header = "Idempotency-Key"

// ReplayedHeader marks a replayed answer.
const ReplayedHeader = "Idempotent-Replayed"

var (
	errMissing  = errs.E(errs.Invalid, "idempotency_key_missing", "this endpoint requires an Idempotency-Key header")
	errInvalid  = errs.E(errs.Invalid, "idempotency_key_invalid", "the Idempotency-Key must be 1 to 255 printable ASCII characters, bare or as a quoted string")
	errMismatch = errs.E(errs.Unprocessable, "idempotency_key_mismatch", "this Idempotency-Key was used with a different request (method, path or body)")
)

// inUseError answers a retry that arrives while the first request still runs.
type inUseError struct {
	retryAfter time.Duration
}

func (e inUseError) Error() string { return "idempotency_key_in_use" }

// Unwrap gives the error its kind and code.
func (e inUseError) Unwrap() error {
	return errs.E(errs.Conflict, "idempotency_key_in_use", "a request with this Idempotency-Key is still in progress; retry later")
}

// SetHeaders tells the client when to retry.
func (e inUseError) SetHeaders(h http.Header) {
	h.Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(e.retryAfter.Seconds())))))
}

// ParseKey reads an Idempotency-Key header value: an RFC 8941 string ("...", with \" and \\
// escapes) or, leniently, the bare key. The key is 1 to 255 printable ASCII characters.
func ParseKey(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, `"`) {
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			c := v[i]
			switch {
			case c == '\\':
				i++
				if i >= len(v) || (v[i] != '"' && v[i] != '\\') {
					return "", false
				}
				b.WriteByte(v[i])
			case c == '"':
				if i != len(v)-1 {
					return "", false
				}
				return checkKey(b.String())
			default:
				b.WriteByte(c)
			}
		}
		return "", false // no closing quote
	}
	return checkKey(v)
}

func checkKey(k string) (string, bool) {
	if len(k) == 0 || len(k) > 255 {
		return "", false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return "", false
		}
	}
	return k, true
}
