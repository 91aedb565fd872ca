package auth

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// ErrUnauthorized answers a missing, invalid, expired or revoked credential.
var ErrUnauthorized = errs.E(errs.Unauthenticated, "unauthorized", "a valid bearer token or API key is required")

// Authenticator turns a bearer credential into a Principal.
type Authenticator struct {
	Keys     *Keys
	Issuer   string
	Audience string
	DB       *postgres.DB
	Roles    CurrentRoles // users' current roles, which bound their tokens' and keys'
	Clock    clock.Clock
	Live     bool // accept sk_live_ keys (production) rather than sk_test_ ones
	// Failures, when set, is each client's budget of failed authentications (nil: unbounded).
	Failures FailureBudget

	cacheOnce sync.Once
	cache     *tokenCache
}

// FailureBudget bounds each client's failed authentications. It is an interface so that
// this package needs no rate limiter: internal/server backs it with the per-address "auth"
// budget that the routes working without a credential spend too (ratelimit.AddrBudget).
type FailureBudget interface {
	// Check answers nil while r's client may have a credential looked up, else the error to
	// answer (429 rate_limited). It spends nothing.
	Check(r *http.Request) error
	// Spend charges a failed authentication to r's client, and answers the error to answer
	// instead of the 401 when the client had spent its budget already.
	Spend(r *http.Request) error
}

// Authenticate requires a valid credential and puts its principal in the context.
func (a *Authenticator) Authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		if !ok {
			httpx.Error(w, r, ErrUnauthorized)
			return
		}
		if err := a.mayLookUp(r, token); err != nil {
			httpx.Error(w, r, err)
			return
		}
		p, err := a.Principal(r.Context(), token)
		if err != nil {
			httpx.Error(w, r, a.failed(r, err))
			return
		}
		if p.TenantID != uuid.Nil {
			// The uuid, not its text: it is formatted only if a line is written.
			httpx.AddLogAttrs(r.Context(), slog.Any("tenant_id", logUUID(p.TenantID)))
		}
		httpx.SpanPrincipal(r.Context(), p.TenantID, p.Kind.String())
		// WithPrincipal's value, in the request's state where it has room (httpx.WithValue).
		next.ServeHTTP(w, httpx.WithValue(r, principalKey{}, p))
	})
}

// mayLookUp refuses an API key from a client that has spent its failure budget, before the
// database is asked: that lookup is the work the budget bounds, and a key is known valid only
// after it. An access token is verified without the database, so a valid one passes
// whatever its client's budget, and an invalid one is charged (failed).
func (a *Authenticator) mayLookUp(r *http.Request, token string) error {
	if a.Failures == nil || !strings.HasPrefix(token, "sk_") {
		return nil
	}
	return a.Failures.Check(r)
}

// failed charges a credential refused with err to its client: the answer is err, or the
// budget's 429 once the client has spent it. Only refusals are charged: not a missing
// credential, which cost no work, nor a failure of ours (a database error), which is no guess.
func (a *Authenticator) failed(r *http.Request, err error) error {
	if a.Failures == nil || !errs.Is(err, errs.Unauthenticated) {
		return err
	}
	if denied := a.Failures.Spend(r); denied != nil {
		return denied
	}
	return err
}

// Principal checks a JWT or an API key, and gives it its effective role.
func (a *Authenticator) Principal(ctx context.Context, token string) (Principal, error) {
	p, err := a.credential(ctx, token)
	if err != nil {
		return Principal{}, err
	}
	return a.effective(ctx, p)
}

// credential checks a JWT or an API key and answers the principal it records.
func (a *Authenticator) credential(ctx context.Context, token string) (Principal, error) {
	if strings.HasPrefix(token, "sk_") {
		return a.apiKey(ctx, token)
	}
	a.cacheOnce.Do(func() { a.cache = newTokenCache(10_000) })
	now := a.Clock.Now()
	if p, ok := a.cache.get(token, now); ok {
		return p, nil
	}
	c, err := a.Keys.Verify(token, a.Issuer, a.Audience, now)
	if err != nil {
		return Principal{}, ErrUnauthorized
	}
	p, err := principalOf(c)
	if err != nil {
		return Principal{}, err
	}
	a.cache.put(token, p, c.ExpiresAt.Time, now)
	return p, nil
}

// principalOf reads the principal of verified claims.
func principalOf(c *Claims) (Principal, error) {
	role := Role(c.Role)
	if role == RolePlatformAdmin {
		if c.TenantID != "" {
			return Principal{}, ErrUnauthorized
		}
		return Principal{Kind: KindPlatform, Role: role, Operator: c.Subject}, nil
	}
	tid, err1 := uuid.Parse(c.TenantID)
	uid, err2 := uuid.Parse(c.Subject)
	if err1 != nil || err2 != nil || role.rank() == 0 {
		return Principal{}, ErrUnauthorized
	}
	return Principal{Kind: KindUser, TenantID: tid, ID: uid, UserID: uid, Role: role}, nil
}

func (a *Authenticator) apiKey(ctx context.Context, token string) (Principal, error) {
	prefix := "sk_test_"
	if a.Live {
		prefix = "sk_live_"
	}
	id, secret, ok := ParseAPIKey(token)
	if !ok || !strings.HasPrefix(token, prefix) {
		return Principal{}, ErrUnauthorized
	}
	var (
		p     = Principal{Kind: KindAPIKey, ID: id}
		hash  []byte
		limit []byte
	)
	err := a.DB.Pool.QueryRow(ctx, "SELECT tenant_id, role, secret_hash, rate_limit, created_by FROM app.api_key_for_auth($1)", id).
		Scan(&p.TenantID, &p.Role, &hash, &limit, &p.UserID)
	switch {
	case postgres.IsNoRows(err):
		return Principal{}, ErrUnauthorized
	case err != nil:
		return Principal{}, err
	case !SecretMatches(secret, hash):
		return Principal{}, ErrUnauthorized
	}
	if limit != nil {
		p.KeyLimit = new(RateLimit)
		if err := json.Unmarshal(limit, p.KeyLimit); err != nil {
			return Principal{}, err
		}
	}
	return p, nil
}

// bearer extracts the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

var (
	errForbidden       = errs.E(errs.Forbidden, "forbidden", "your role does not allow this")
	errTenantOnly      = errs.E(errs.Forbidden, "forbidden", "this route needs a tenant credential")
	errPlatformOnly    = errs.E(errs.Forbidden, "forbidden", "this route is for platform operators")
	errRoleAboveCaller = errs.E(errs.Forbidden, "forbidden", "you cannot grant a role above your own")
	errOutranked       = errs.E(errs.Forbidden, "forbidden", "you cannot act on a user or key whose role is above your own")
)

// RequireRole admits tenant principals with at least role min.
func RequireRole(min Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := MustFromContext(r.Context())
			switch {
			case p.Kind == KindPlatform:
				httpx.Error(w, r, errTenantOnly)
			case !p.Role.AtLeast(min):
				httpx.Error(w, r, errForbidden)
			default:
				next.ServeHTTP(w, r)
			}
		})
	}
}

// RequirePlatformAdmin admits only platform operators.
func RequirePlatformAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if MustFromContext(r.Context()).Kind != KindPlatform {
			httpx.Error(w, r, errPlatformOnly)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// CheckGrant refuses to let a principal hand out a role stronger than its own (MayActOn).
func CheckGrant(p Principal, role Role) error {
	if !MayActOn(p.Role, role) {
		return errRoleAboveCaller
	}
	return nil
}

// CheckActOn refuses to let a principal change, delete or revoke a user or key whose role is
// stronger than its own (MayActOn).
func CheckActOn(p Principal, target Role) error {
	if !MayActOn(p.Role, target) {
		return errOutranked
	}
	return nil
}

// logUUID logs as the uuid's text, the line slog.Any(key, uuid.UUID) writes, without a
// round through encoding/json (which the JSON handler takes for a TextMarshaler).
type logUUID uuid.UUID

func (u logUUID) LogValue() slog.Value { return slog.StringValue(uuid.UUID(u).String()) }
