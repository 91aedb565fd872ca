package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/idempotency"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Recorder is the middleware that writes an entry for every mutating request (POST, PUT,
// PATCH, DELETE) of the routes behind it: tenant principals' requests to their tenant, and
// operators' requests to a tenant's routes (/v1/admin/tenants/{id}, ...{tenant_id}). A route
// mounted behind it is audited without anything of its own.
type Recorder struct {
	Log      *Log
	ClientIP func(*http.Request) netip.Addr
}

func mutating(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// errRollback ends a unit of work whose change must not hold.
var errRollback = errors.New("audit: roll back")

type afterKey struct{}

// AfterCommit runs fn once the request's change has committed (at once outside a unit of
// work): for work that must not start before its change is visible, such as an immediate
// purge, which cannot run inside the request's transaction.
func AfterCommit(ctx context.Context, fn func()) {
	if hooks, ok := ctx.Value(afterKey{}).(*[]func()); ok {
		*hooks = append(*hooks, fn)
		return
	}
	fn()
}

// InTx runs the handler inside one transaction of the tenant (a unit of work: every
// InTenantTx of the request joins it) and writes the entry in it before it commits, so an
// entry of success exists exactly when the change does. A failed request's change is rolled
// back and its failure recorded in a transaction of its own, except a 4xx answer stored
// under an Idempotency-Key, which commits with its failure entry as the key's record needs.
// The answer is held until the commit: a client never hears of a change that did not hold.
// An idempotent replay adds no entry.
func (rc *Recorder) InTx(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, tenantID, ok := recorded(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		if p.Kind == auth.KindPlatform && !strings.HasPrefix(chi.RouteContext(r.Context()).RoutePattern(), "/v1/admin/tenants/") {
			// An operator's change to a tenant made in a platform transaction (a flag
			// override, which flag_audit records in its own transaction): no unit of the
			// tenant can hold it.
			rc.after(w, r, next, p, tenantID)
			return
		}
		ctx, stored := idempotency.NoticeStored(r.Context())
		var hooks []func()
		ctx = context.WithValue(ctx, afterKey{}, &hooks)
		buf := newBuffer()
		var e *Entry
		err := rc.Log.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
			next.ServeHTTP(buf, r.WithContext(postgres.WithTx(ctx, tenantID, tx)))
			if buf.header.Get(idempotency.ReplayedHeader) != "" {
				return errRollback
			}
			e = rc.entry(r, p, buf)
			if e.Outcome == Failure && !stored() {
				return errRollback
			}
			return rc.Log.insert(ctx, tx, tenantID, e)
		})
		switch {
		case err == nil:
			for _, fn := range hooks {
				fn()
			}
		case errors.Is(err, errRollback):
			if e != nil {
				rc.recordAlone(r, tenantID, e)
			}
		default:
			// The change, or its entry, did not commit: whatever the handler answered, the
			// client hears the failure, and the log records it.
			if e != nil {
				e.Outcome, e.Status = Failure, httpx.Status(errs.KindOf(err))
				rc.recordAlone(r, tenantID, e)
			}
			httpx.Error(w, r, err)
			return
		}
		buf.writeTo(w)
	})
}

// After writes the entry after the handler, in a transaction of its own: for routes that
// commit their own steps as they call out to other systems (payments, under a phased
// Idempotency-Key), which no transaction may span. The handler has committed before it
// answers a success, so a success entry is never of a change that did not happen; a crash
// between the two loses the entry.
func (rc *Recorder) After(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, tenantID, ok := recorded(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		rc.after(w, r, next, p, tenantID)
	})
}

func (rc *Recorder) after(w http.ResponseWriter, r *http.Request, next http.Handler, p auth.Principal, tenantID uuid.UUID) {
	buf := newBuffer()
	next.ServeHTTP(buf, r)
	if buf.header.Get(idempotency.ReplayedHeader) == "" {
		rc.recordAlone(r, tenantID, rc.entry(r, p, buf))
	}
	buf.writeTo(w)
}

// recordAlone writes e in a transaction of its own (a failure's, or an entry written
// after its change), logging what cannot be written.
func (rc *Recorder) recordAlone(r *http.Request, tenantID uuid.UUID, e *Entry) {
	ctx := context.WithoutCancel(r.Context())
	if err := rc.Log.Record(ctx, tenantID, e); err != nil {
		// An operator's request about a tenant that does not exist has nowhere to go.
		if !postgres.IsForeignKeyViolation(err, "") {
			httpx.Logger(ctx).ErrorContext(ctx, "audit: entry not written", slog.String("error", err.Error()))
		}
	}
}

// recorded answers who made r and the tenant whose log records it, or false when r is not
// recorded: it changes nothing, or an operator's route names no tenant.
func recorded(r *http.Request) (auth.Principal, uuid.UUID, bool) {
	if !mutating(r.Method) {
		return auth.Principal{}, uuid.Nil, false
	}
	p := auth.MustFromContext(r.Context())
	tenantID, ok := target(r, p)
	return p, tenantID, ok
}

// target answers the tenant whose log records a request: the caller's, or for an operator
// the tenant the route names.
func target(r *http.Request, p auth.Principal) (uuid.UUID, bool) {
	if p.Kind != auth.KindPlatform {
		return p.TenantID, true
	}
	pattern := chi.RouteContext(r.Context()).RoutePattern()
	param := ""
	switch {
	case strings.HasPrefix(pattern, "/v1/admin/tenants/{id}"):
		param = "id"
	case strings.Contains(pattern, "{tenant_id}"):
		param = "tenant_id"
	default:
		return uuid.Nil, false
	}
	id, err := uuid.Parse(chi.URLParam(r, param))
	return id, err == nil
}

// entry describes the request that buf answered.
func (rc *Recorder) entry(r *http.Request, p auth.Principal, buf *buffer) *Entry {
	rctx := chi.RouteContext(r.Context())
	pattern := rctx.RoutePattern()
	e := &Entry{
		Action:       r.Method + " " + pattern,
		ResourceType: resourceType(pattern),
		Outcome:      Success,
		Status:       buf.status,
		RequestID:    httpx.RequestID(r.Context()),
	}
	if buf.status >= 400 {
		e.Outcome = Failure
	}
	switch p.Kind {
	case auth.KindAPIKey:
		e.ActorType, e.ActorID = "api_key", p.ID.String()
	case auth.KindPlatform:
		e.ActorType, e.ActorID = "operator", p.Operator
		if e.ActorID == "" {
			e.ActorID = "operator"
		}
	default:
		e.ActorType, e.ActorID = "user", p.UserID.String()
	}
	if rc.ClientIP != nil {
		if ip := rc.ClientIP(r); ip.IsValid() {
			e.ClientIP = ip.String()
		}
	}
	// The resource is the one the path names last, or the one a success created.
	for i := len(rctx.URLParams.Keys) - 1; i >= 0; i-- {
		if k, v := rctx.URLParams.Keys[i], rctx.URLParams.Values[i]; k != "*" && v != "" {
			e.ResourceID = &v
			break
		}
	}
	if e.ResourceID == nil && e.Outcome == Success {
		var body struct {
			ID any `json:"id"`
		}
		if json.Unmarshal(buf.body.Bytes(), &body) == nil {
			if s, ok := body.ID.(string); ok && len(s) <= 200 {
				e.ResourceID = &s
			}
		}
	}
	return e
}

// resourceType is the first segment of the route after /v1 (and /admin): "projects".
func resourceType(pattern string) string {
	rest := strings.TrimPrefix(pattern, "/v1/")
	rest = strings.TrimPrefix(rest, "admin/")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// buffer holds an answer until its change has committed.
type buffer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newBuffer() *buffer { return &buffer{header: make(http.Header)} }

func (b *buffer) Header() http.Header { return b.header }

func (b *buffer) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *buffer) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *buffer) writeTo(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range b.header {
		h[k] = v
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	w.Write(b.body.Bytes())
}
