// Package httpx is the HTTP plumbing every module shares: problem+json errors, strict JSON
// decoding, cursor pagination, request ids, logging, metrics and panic recovery.
package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"

	"github.com/saasbase/saasbase/internal/platform/errs"
)

// Problem is an RFC 9457 problem document with the service's extensions.
type Problem struct {
	Type      string            `json:"type"`
	Title     string            `json:"title"`
	Status    int               `json:"status"`
	Detail    string            `json:"detail,omitempty"`
	Code      string            `json:"code"`
	RequestID string            `json:"request_id"`
	Errors    []errs.FieldError `json:"errors,omitempty"`
	Policy    string            `json:"policy,omitempty"`
}

// Status maps an error kind to its HTTP status. This is the only place that does.
func Status(k errs.Kind) int {
	switch k {
	case errs.Invalid:
		return http.StatusBadRequest
	case errs.Unauthenticated:
		return http.StatusUnauthorized
	case errs.Forbidden:
		return http.StatusForbidden
	case errs.NotFound:
		return http.StatusNotFound
	case errs.Conflict:
		return http.StatusConflict
	case errs.TooLarge:
		return http.StatusRequestEntityTooLarge
	case errs.RateLimited:
		return http.StatusTooManyRequests
	case errs.Unprocessable:
		return http.StatusUnprocessableEntity
	case errs.PaymentFailed:
		return http.StatusPaymentRequired
	case errs.Unavailable:
		return http.StatusServiceUnavailable
	case errs.MethodNotAllowed:
		return http.StatusMethodNotAllowed
	case errs.UnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	case errs.Gone:
		return http.StatusGone
	}
	return http.StatusInternalServerError
}

// HeaderSetter is an error that wants response headers, such as Retry-After on a 429.
type HeaderSetter interface {
	SetHeaders(http.Header)
}

// PolicyNamer is an error that names the policy that refused the request.
type PolicyNamer interface {
	PolicyName() string
}

// Error writes err as problem+json. Errors without a kind are internal: they are logged
// with the request id and the client sees only that something failed.
func Error(w http.ResponseWriter, r *http.Request, err error) {
	var e *errs.Error
	if !errors.As(err, &e) {
		e = &errs.Error{Kind: errs.Internal, Code: "internal", Err: err}
	}
	if e.Kind == errs.Internal && lostConnection(err) {
		e = &errs.Error{Kind: errs.Unavailable, Code: "dependency_unavailable", Detail: "a service this request needs cannot be reached; retry shortly", Err: err}
	}
	status := Status(e.Kind)
	p := Problem{
		Type:      "about:blank",
		Title:     title(status),
		Status:    status,
		Detail:    e.Detail,
		Code:      e.Code,
		RequestID: RequestID(r.Context()),
		Errors:    e.Fields,
	}
	if status == http.StatusInternalServerError {
		p.Code, p.Detail = "internal", "an internal error occurred; quote the request id when reporting it"
		Logger(r.Context()).ErrorContext(r.Context(), "request failed", slog.String("error", err.Error()))
	}
	if status == http.StatusServiceUnavailable {
		Logger(r.Context()).WarnContext(r.Context(), "request failed", slog.String("error", err.Error()))
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "1")
		}
	}
	var hs HeaderSetter
	if errors.As(err, &hs) {
		hs.SetHeaders(w.Header())
	}
	var pn PolicyNamer
	if errors.As(err, &pn) {
		p.Policy = pn.PolicyName()
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
	}
	writeJSON(w, status, "application/problem+json", p)
}

// title is a status's reason phrase as RFC 9110 names it; Go's http.StatusText keeps the
// older name of 413.
func title(status int) string {
	if status == http.StatusRequestEntityTooLarge {
		return "Content Too Large"
	}
	return http.StatusText(status)
}

// lostConnection reports whether err says a connection was refused, timed out or dropped: a
// dependency down, which a retry may get past, rather than a bug.
func lostConnection(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF)
}

// JSON writes v with the given status.
func JSON(w http.ResponseWriter, status int, v any) {
	writeJSON(w, status, "application/json", v)
}

// NoContent answers 204.
func NoContent(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	jb := jsonBuffers.Get().(*jsonBuffer)
	defer jb.release()
	body := jb.encode(v) // json.Marshal's bytes and a newline
	if body == nil {
		status, contentType = http.StatusInternalServerError, "application/problem+json"
		body = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500,"code":"internal","request_id":""}` + "\n")
	}
	// Both values in one allocation, under their canonical names (what Set would store).
	vals := new([2]string)
	vals[0], vals[1] = contentType, strconv.Itoa(len(body))
	h := w.Header()
	h["Content-Type"], h["Content-Length"] = vals[0:1:1], vals[1:2:2]
	w.WriteHeader(status)
	w.Write(body)
}

// jsonBuffer is an encoder and the buffer it writes to, reused across answers: json.Marshal
// would copy each body out of its own pooled buffer, and appending the newline copy it again.
type jsonBuffer struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var jsonBuffers = sync.Pool{New: func() any {
	jb := new(jsonBuffer)
	jb.enc = json.NewEncoder(&jb.buf)
	return jb
}}

// encode answers v's JSON and a newline, valid until release, or nil if v cannot be encoded.
func (jb *jsonBuffer) encode(v any) []byte {
	if err := jb.enc.Encode(v); err != nil {
		return nil
	}
	return jb.buf.Bytes()
}

// maxPooledJSON is the largest buffer kept for reuse: a rare large answer (a long page) does
// not stay in memory for the small ones.
const maxPooledJSON = 64 << 10

func (jb *jsonBuffer) release() {
	if jb.buf.Cap() > maxPooledJSON {
		return
	}
	jb.buf.Reset()
	jsonBuffers.Put(jb)
}

// HandlerFunc is a handler that returns its error instead of writing it, so every error
// reaches the client through Error, the one place that maps errors to answers.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

func (f HandlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := f(w, r); err != nil {
		Error(w, r, err)
	}
}
