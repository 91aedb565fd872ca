package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Options choose a route's behaviour.
type Options struct {
	Required bool  // no key is a 400 (payments)
	Phased   bool  // claim first, no transaction across the handler (handlers that call out)
	MaxBody  int64 // the route's body limit (httpx.MaxBody if 0)
	// Fingerprint answers what else of a request, besides method, path and body, is part of
	// its meaning (headers that carry data, say); it is hashed with the body. Nil, or an
	// empty answer, leaves the body's hash as it is.
	Fingerprint func(*http.Request) []byte
}

// Middleware applies idempotency keys to tenant POST and PATCH routes.
type Middleware struct {
	Store *Store
}

// Handler returns the middleware for routes with options opt.
func (m *Middleware) Handler(opt Options) func(http.Handler) http.Handler {
	if opt.MaxBody == 0 {
		opt.MaxBody = httpx.MaxBody
	}
	return func(next http.Handler) http.Handler {
		return httpx.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			if r.Method != http.MethodPost && r.Method != http.MethodPatch {
				next.ServeHTTP(w, r)
				return nil
			}
			values := r.Header.Values(Header)
			if len(values) == 0 {
				if opt.Required {
					return errMissing
				}
				next.ServeHTTP(w, r)
				return nil
			}
			key, ok := ParseKey(values[0])
			if !ok || len(values) > 1 {
				return errInvalid
			}
			body, err := io.ReadAll(io.LimitReader(r.Body, opt.MaxBody+1))
			if err != nil {
				return errs.Wrap(err, errs.Invalid, "validation_failed", "the request body could not be read")
			}
			if int64(len(body)) > opt.MaxBody {
				return errs.E(errs.TooLarge, "payload_too_large", "the request body is larger than %d bytes", opt.MaxBody)
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			p := auth.MustFromContext(r.Context())
			req := Request{
				TenantID: p.TenantID, Principal: p.ID, Key: key,
				Method: r.Method, Path: r.URL.Path, BodyHash: bodyHash(r, body, opt.Fingerprint),
			}
			if opt.Phased {
				return m.phased(w, r, next, req, body)
			}
			return m.atomic(w, r, next, req, body)
		})
	}
}

// bodyHash is the hash that tells one request under a key from another: the body's, or, where
// the route says more of the request carries meaning, the hash of both, each length-prefixed
// so that no shift of bytes between them can collide.
func bodyHash(r *http.Request, body []byte, fingerprint func(*http.Request) []byte) [sha256.Size]byte {
	var extra []byte
	if fingerprint != nil {
		extra = fingerprint(r)
	}
	if len(extra) == 0 {
		return sha256.Sum256(body)
	}
	h := sha256.New()
	for _, part := range [][]byte{extra, body} {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(part))))
		h.Write(part)
	}
	return [sha256.Size]byte(h.Sum(nil))
}

// storable reports whether an answer is kept for replays. 5xx answers are not, so a retry
// runs again; nor are 401, 403, 409 and 429, which say "not now" rather than "this request's
// outcome".
func storable(status int) bool {
	switch {
	case status >= 500:
		return false
	case status == http.StatusUnauthorized, status == http.StatusForbidden,
		status == http.StatusConflict, status == http.StatusTooManyRequests:
		return false
	}
	return true
}

// notStored carries an answer out of a transaction that must roll back.
type notStored struct{ rec *recorder }

func (notStored) Error() string { return "idempotency: answer not stored" }

// atomic runs claim, handler and stored answer in one transaction.
func (m *Middleware) atomic(w http.ResponseWriter, r *http.Request, next http.Handler, req Request, body []byte) error {
	ctx := r.Context()
	var (
		out            = claimed
		stored         Record
		locked, exists bool
		rec            = newRecorder()
		now            = lockTime(m.Store.Clock)
	)
	b := &pgx.Batch{}
	queueLookup(b, req, &locked, &exists)
	err := m.Store.DB.InTenantTxBatch(ctx, req.TenantID, b, func(tx pgx.Tx) (err error) {
		switch {
		case !locked:
			out = inFlight
		case exists:
			out, stored, err = m.Store.resolve(ctx, tx, req, now)
		}
		if err != nil || out != claimed {
			return err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(rec, r.WithContext(postgres.WithTx(ctx, req.TenantID, tx)))
		if !storable(rec.status) {
			return notStored{rec}
		}
		if exists {
			err = complete(ctx, tx, &stored, rec.response())
		} else {
			err = m.Store.insertCompleted(ctx, tx, req, now, rec.response())
		}
		if err != nil {
			if rec.status < 400 {
				return err // the effect is rolled back with it: never claim success
			}
			httpx.Logger(ctx).WarnContext(ctx, "idempotency: answer not stored", slog.String("error", err.Error()))
			return notStored{rec}
		}
		markStored(ctx)
		return nil
	})
	var ns notStored
	switch {
	case errors.As(err, &ns):
		ns.rec.writeTo(w)
		return nil
	case err != nil:
		return err
	}
	return m.answer(w, out, stored, rec)
}

// phased claims the key in its own transaction, runs the handler outside any transaction
// (it records recovery points through Key), then stores the answer or releases the key.
func (m *Middleware) phased(w http.ResponseWriter, r *http.Request, next http.Handler, req Request, body []byte) error {
	ctx := r.Context()
	out, stored, err := m.Store.Claim(ctx, req)
	if err != nil {
		return err
	}
	if out != claimed {
		return m.answer(w, out, stored, nil)
	}
	rec := newRecorder()
	func() {
		defer func() {
			if v := recover(); v != nil {
				// Let a retry run: the key must not stay locked by a request that died.
				m.Store.Release(context.WithoutCancel(ctx), &stored)
				panic(v)
			}
		}()
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(rec, r.WithContext(withKey(ctx, &Key{store: m.Store, rec: &stored})))
	}()
	// The work is done: record its outcome even if the client has gone, or the key would
	// stay locked and its answer lost.
	store := context.WithoutCancel(ctx)
	if storable(rec.status) {
		if err := m.Store.Complete(store, &stored, rec.response()); err != nil {
			return err
		}
	} else if err := m.Store.Release(store, &stored); err != nil {
		return err
	}
	rec.writeTo(w)
	return nil
}

// answer writes what claiming found: a replay, a refusal, or the fresh answer in rec.
func (m *Middleware) answer(w http.ResponseWriter, out outcome, stored Record, rec *recorder) error {
	switch out {
	case replay:
		h := w.Header()
		for k, v := range stored.Response.Header {
			h.Set(k, v)
		}
		h.Set(ReplayedHeader, "true")
		h.Set("Content-Length", strconv.Itoa(len(stored.Response.Body)))
		w.WriteHeader(stored.Response.Status)
		w.Write(stored.Response.Body)
		return nil
	case inFlight:
		return inUseError{retryAfter: m.Store.LockTimeout / 10}
	case mismatch:
		return errMismatch
	}
	rec.writeTo(w)
	return nil
}

// keptHeaders are the answer headers a replay repeats; the rest (request id, rate limits,
// dates) belong to the request that carries them.
var keptHeaders = []string{"Content-Type", "Location", "Cache-Control", "ETag"}

// recorder captures a handler's answer so it can be stored before it is sent.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: make(http.Header)} }

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

func (r *recorder) response() Response {
	res := Response{Status: r.status, Header: map[string]string{}, Body: r.body.Bytes()}
	for _, k := range keptHeaders {
		if v := r.header.Get(k); v != "" {
			res.Header[k] = v
		}
	}
	return res
}

func (r *recorder) writeTo(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range r.header {
		h[k] = v
	}
	if r.status == 0 {
		r.status = http.StatusOK
	}
	w.WriteHeader(r.status)
	w.Write(r.body.Bytes())
}
