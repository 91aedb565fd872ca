package httpx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	logStateKey
)

// RequestID returns the request's id, or "" outside a request.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
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
			var b [12]byte
			rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

// logState carries attributes learned while the request runs (the tenant, once
// authentication has found it) back to the access log line written at the end.
type logState struct {
	logger *slog.Logger
	attrs  []slog.Attr
}

// AddLogAttrs adds attributes to the request's access log line and to Logger(ctx).
func AddLogAttrs(ctx context.Context, attrs ...slog.Attr) {
	if st, ok := ctx.Value(logStateKey).(*logState); ok {
		st.attrs = append(st.attrs, attrs...)
	}
}

// Logger returns a logger carrying the request id and the attributes added so far.
func Logger(ctx context.Context) *slog.Logger {
	st, ok := ctx.Value(logStateKey).(*logState)
	if !ok {
		return slog.Default()
	}
	l := st.logger.With(slog.String("request_id", RequestID(ctx)))
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
// its routes match, a subrouter reports its own mount pattern ("/v1/*"), so a pattern ending
// in /* counts only if the router finds it for the request too.
func routeLabel(r *http.Request) string {
	rctx := chi.RouteContext(r.Context())
	if rctx == nil {
		return "unmatched"
	}
	pattern := rctx.RoutePattern()
	if pattern == "" || strings.HasSuffix(pattern, "/*") && !hasRoute(rctx, r, pattern) {
		return "unmatched"
	}
	return pattern
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
// explode the label space) and the status.
func Observe(logger *slog.Logger, m *Metrics, ip ClientIP) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			st := &logState{logger: logger}
			ctx := context.WithValue(r.Context(), logStateKey, st)
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r.WithContext(ctx))
			if sw.status == 0 {
				sw.status = http.StatusOK
			}
			elapsed := time.Since(start)
			route := routeLabel(r)
			m.duration.WithLabelValues(methodLabel(r.Method), route, strconv.Itoa(sw.status)).Observe(elapsed.Seconds())
			level := slog.LevelInfo
			if sw.status >= 500 {
				level = slog.LevelError
			}
			attrs := append([]slog.Attr{
				slog.String("request_id", RequestID(ctx)),
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.String("client_ip", ip.Of(r).String()),
				slog.Int("status", sw.status),
				slog.Int("bytes", sw.bytes),
				slog.Duration("duration", elapsed),
			}, st.attrs...)
			logger.LogAttrs(ctx, level, "request", attrs...)
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
