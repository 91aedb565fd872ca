package httpx

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
)

type ctxKey int

const requestKey ctxKey = iota

// request is what the middleware keeps of a request in flight: its id, the access log's
// state, the status writer, and the values later middleware put in its context (WithValue),
// in one allocation. It is the request's context from WithRequestID on, so that neither that
// middleware, nor Observe, nor those setting a value derive a context and copy the request
// of their own.
type request struct {
	context.Context // the parent

	id       string
	idHeader [1]string // the X-Request-Id header's value, without a slice of its own

	observed bool         // Observe has filled in what follows
	logger   *slog.Logger // the access log's
	// attrs are the attributes learned while the request runs (the tenant, once
	// authentication has found it), for the access log line written at the end; attrsBuf
	// holds the usual few without another allocation.
	attrs    []slog.Attr
	attrsBuf [2]slog.Attr
	sw       statusWriter

	values [maxValues]keyValue // set by WithValue, the latest last
	nv     int
}

type keyValue struct{ key, val any }

// maxValues is how many values a request's state holds: the principal, the tenant and the
// flag snapshot of a tenant request, and one to spare. More go into contexts of their own.
const maxValues = 4

// Value answers the request's state, the latest value set under key, or the parent's.
func (st *request) Value(key any) any {
	if key == any(requestKey) {
		return st
	}
	for i := st.nv - 1; i >= 0; i-- {
		if st.values[i].key == key {
			return st.values[i].val
		}
	}
	return st.Context.Value(key)
}

func requestOf(ctx context.Context) *request {
	st, _ := ctx.Value(requestKey).(*request)
	return st
}

// WithValue answers r with val under key in its context, as
// r.WithContext(context.WithValue(r.Context(), key, val)) would. When r's context is the
// request state WithRequestID made, with room left, the value goes into the state and r is
// answered as it is: no context and no copy of r.
//
// The state is shared with the middleware before, which may see the value once it is set
// (context.WithValue would hide it from them); values are set before the handler after them
// is called, so whatever that handler starts sees them set.
func WithValue(r *http.Request, key, val any) *http.Request {
	// An incomparable key is context.WithValue's to refuse (it panics): Value compares keys.
	if st, ok := r.Context().(*request); ok && st.nv < maxValues && key != nil && reflect.TypeOf(key).Comparable() {
		st.values[st.nv] = keyValue{key, val}
		st.nv++
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), key, val))
}

// RequestID returns the request's id, or "" outside a request.
func RequestID(ctx context.Context) string {
	if st := requestOf(ctx); st != nil {
		return st.id
	}
	return ""
}

// validRequestID accepts what a proxy or client may reasonably send: 1 to 128 visible ASCII
// characters, so an incoming id can never inject into headers or logs.
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// WithRequestID echoes a valid incoming X-Request-Id or makes one, on the response and in
// the context.
func WithRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			// 96 random bits from the runtime's generator: an id names a request for
			// correlation and is no secret, and crypto/rand costs several times as much.
			var b [12]byte
			binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
			binary.LittleEndian.PutUint32(b[8:], rand.Uint32())
			id = hex.EncodeToString(b[:])
		}
		st := &request{Context: r.Context(), id: id}
		st.idHeader[0] = id
		w.Header()["X-Request-Id"] = st.idHeader[:1:1] // the canonical name: no re-cased copy
		next.ServeHTTP(w, r.WithContext(st))
	})
}

// AddLogAttrs adds attributes to the request's access log line and to Logger(ctx).
func AddLogAttrs(ctx context.Context, attrs ...slog.Attr) {
	if st := requestOf(ctx); st != nil && st.observed {
		st.attrs = append(st.attrs, attrs...)
	}
}

// Logger returns a logger carrying the request id and the attributes added so far.
func Logger(ctx context.Context) *slog.Logger {
	st := requestOf(ctx)
	if st == nil || !st.observed {
		return slog.Default()
	}
	l := st.logger.With(slog.String("request_id", st.id))
	for _, a := range st.attrs {
		l = l.With(a)
	}
	return l
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Metrics holds the HTTP metrics.
type Metrics struct {
	duration *prometheus.HistogramVec
	// The histogram of each label set seen, so that a request neither hashes nor checks its
	// labels again (what HistogramVec.WithLabelValues does on every call).
	observers readMostly[observerKey, prometheus.Observer]
}

type observerKey struct {
	method, route string
	status        int
}

// observer is the histogram of a request's labels.
func (m *Metrics) observer(method, route string, status int) prometheus.Observer {
	k := observerKey{methodLabel(method), route, status}
	if o, ok := m.observers.get(k); ok {
		return o
	}
	o := m.duration.WithLabelValues(k.method, route, strconv.Itoa(status))
	m.observers.put(k, o)
	return o
}

// NewMetrics registers the HTTP metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_request_duration_seconds",
		Help:    "HTTP request latency by method, route pattern and status.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"method", "route", "status"})}
	reg.MustRegister(m.duration)
	return m
}

// methodLabel is the request method as a metric label: one of HTTP's methods, else OTHER.
// A client may send any token as a method, and every label value is a series kept for the
// life of the process and sent with every scrape.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "OTHER"
}

// routeLabel is the pattern of the route that served r, or "unmatched". For a path none of
// its routes match, a subrouter reports its own mount pattern ("/ofrep/v1/*"), so a pattern
// ending in /* counts only if the router finds it for the request too.
func routeLabel(r *http.Request) string {
	rctx := chi.RouteContext(r.Context())
	if rctx == nil {
		return "unmatched"
	}
	pattern := routePattern(rctx)
	if pattern == "" || strings.HasSuffix(pattern, "/*") && !hasRoute(rctx, r, pattern) {
		return "unmatched"
	}
	return pattern
}

// patterns holds what chi's RoutePattern answered for the route patterns of up to three
// nested routers, which it would otherwise join and rewrite, allocating, on every call.
var patterns readMostly[[3]string, string]

// routePattern is rctx.RoutePattern().
func routePattern(rctx *chi.Context) string {
	if len(rctx.RoutePatterns) > 3 {
		return rctx.RoutePattern()
	}
	var k [3]string
	copy(k[:], rctx.RoutePatterns)
	if p, ok := patterns.get(k); ok {
		return p
	}
	p := rctx.RoutePattern()
	patterns.put(k, p)
	return p
}

// hasRoute reports whether the router has a route of this pattern for r.
func hasRoute(rctx *chi.Context, r *http.Request, pattern string) bool {
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	return rctx.Routes != nil && rctx.Routes.Find(chi.NewRouteContext(), r.Method, path) == pattern
}

// Observe logs each request and records its latency under labels from fixed sets: the method
// (methodLabel), the route pattern (never the raw path, and never a tenant: both would
// explode the label space) and the status. Behind WithRequestID it fills in that
// middleware's request state rather than deriving a context of its own.
func Observe(logger *slog.Logger, m *Metrics, ip ClientIP) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ctx := r.Context()
			st := requestOf(ctx)
			if st == nil || st.observed {
				// Not behind WithRequestID, or observed twice: a state of its own.
				st = &request{Context: ctx}
				if old := requestOf(ctx); old != nil {
					st.id = old.id
				}
				ctx = st
				r = r.WithContext(ctx)
			}
			st.observed, st.logger, st.attrs = true, logger, st.attrsBuf[:0]
			st.sw = statusWriter{ResponseWriter: w}
			sw := &st.sw
			next.ServeHTTP(sw, r)
			if sw.status == 0 {
				sw.status = http.StatusOK
			}
			elapsed := time.Since(start)
			route := routeLabel(r)
			m.observer(r.Method, route, sw.status).Observe(elapsed.Seconds())
			level := slog.LevelInfo
			if sw.status >= 500 {
				level = slog.LevelError
			}
			if !logger.Enabled(ctx, level) {
				return // nothing below is needed but for the line
			}
			// The record is made here rather than by LogAttrs, which would also walk the stack
			// (runtime.Callers) for a source location the line never shows.
			var buf [8]slog.Attr
			attrs := append(append(buf[:0],
				slog.String("request_id", st.id),
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.String("client_ip", ip.Of(r).String()),
				slog.Int("status", sw.status),
				slog.Int("bytes", sw.bytes),
				slog.Duration("duration", elapsed),
			), st.attrs...)
			rec := slog.NewRecord(start.Add(elapsed), level, "request", 0)
			rec.AddAttrs(attrs...)
			_ = logger.Handler().Handle(ctx, rec) // a failed write is dropped, as LogAttrs drops it
		})
	}
}

// Recover turns a panic in a handler into a logged 500 problem, so one bad request never
// takes the process down. http.ErrAbortHandler is re-raised, as net/http expects.
func Recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			Logger(r.Context()).ErrorContext(r.Context(), "panic", slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
			Error(w, r, fmt.Errorf("panic: %v", v))
		}()
		next.ServeHTTP(w, r)
	})
}
