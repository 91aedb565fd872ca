package httpx_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/saasbase/saasbase/internal/platform/httpx"
)

type key string

// TestWithValue: behind WithRequestID a value goes into the request's state, without a copy
// of the request, and reads as context.WithValue's would, the latest of a key first; past the
// state's room, or under a context derived from the state, it is context.WithValue's.
func TestWithValue(t *testing.T) {
	var checked bool
	h := httpx.WithRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := httpx.WithValue(r, key("a"), 1)
		if r2 != r {
			t.Error("WithValue copied the request behind WithRequestID")
		}
		r2 = httpx.WithValue(r2, key("a"), 2)
		for i := range 6 { // past the state's room
			r2 = httpx.WithValue(r2, key("n"), i)
		}
		ctx := r2.Context()
		if got := ctx.Value(key("a")); got != 2 {
			t.Errorf("a = %v, want the latest, 2", got)
		}
		if got := ctx.Value(key("n")); got != 5 {
			t.Errorf("n = %v, want the latest, 5", got)
		}
		if httpx.RequestID(ctx) == "" {
			t.Error("the request id is lost")
		}

		// Under a context derived from the state, the value shadows the state's for the
		// request it answers only.
		derived := r.WithContext(context.WithValue(r.Context(), key("other"), true))
		r3 := httpx.WithValue(derived, key("a"), 3)
		if r3 == derived || r3.Context().Value(key("a")) != 3 || r.Context().Value(key("a")) != 2 {
			t.Errorf("under a derived context: %v in the new request, %v in the old; want 3 and 2",
				r3.Context().Value(key("a")), r.Context().Value(key("a")))
		}
		// An incomparable key is refused as context.WithValue refuses it.
		func() {
			defer func() {
				if recover() == nil {
					t.Error("an incomparable key was taken")
				}
			}()
			httpx.WithValue(r, []int{1}, 1)
		}()
		checked = true
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if !checked {
		t.Fatal("handler not reached")
	}

	// Without WithRequestID: context.WithValue.
	r := httptest.NewRequest("GET", "/", nil)
	r2 := httpx.WithValue(r, key("a"), 1)
	if r2 == r || r2.Context().Value(key("a")) != 1 || r.Context().Value(key("a")) != nil {
		t.Error("without WithRequestID, WithValue is not context.WithValue")
	}

	// A cancellation of the parent reaches contexts derived from the state.
	parent, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	httpx.WithRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, stop := context.WithCancel(r.Context())
		defer stop()
		cancel()
		<-ctx.Done()
		close(done)
	})).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil).WithContext(parent))
	<-done
}

// TestObserve: the access log line carries the request's id, route, status and the
// attributes added on the way (a uuid written as its text), Logger carries the id and those
// attributes, and the histogram counts each label set; Observe works without WithRequestID
// too, and twice on one request.
func TestObserve(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	reg := prometheus.NewRegistry()
	m := httpx.NewMetrics(reg)
	tenant := uuid.New()

	r := chi.NewRouter()
	r.Use(httpx.WithRequestID, httpx.Observe(logger, m, httpx.ClientIP{}))
	r.Get("/things/{id}", func(w http.ResponseWriter, r *http.Request) {
		httpx.AddLogAttrs(r.Context(), slog.Any("tenant_id", tenant))
		httpx.Logger(r.Context()).Info("inside")
		httpx.JSON(w, http.StatusCreated, map[string]string{"id": chi.URLParam(r, "id")})
	})
	before := time.Now().Truncate(time.Millisecond) // the line's time has milliseconds
	for range 3 {
		w := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/things/7", nil)
		req.Header.Set("X-Request-Id", "req-1")
		r.ServeHTTP(w, req)
		if w.Code != http.StatusCreated || w.Body.String() != "{\"id\":\"7\"}\n" ||
			w.Header().Get("Content-Type") != "application/json" || w.Header().Get("Content-Length") != "11" {
			t.Fatalf("answer: %d %q %v", w.Code, w.Body, w.Header())
		}
	}
	after := time.Now()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d log lines, want 6:\n%s", len(lines), logs.String())
	}
	var inside, access map[string]any
	json.Unmarshal([]byte(lines[0]), &inside)
	json.Unmarshal([]byte(lines[1]), &access)
	if inside["msg"] != "inside" || inside["request_id"] != "req-1" || inside["tenant_id"] != tenant.String() {
		t.Errorf("Logger's line: %s", lines[0])
	}
	if access["msg"] != "request" || access["request_id"] != "req-1" || access["route"] != "/things/{id}" ||
		access["status"] != float64(http.StatusCreated) || access["tenant_id"] != tenant.String() || access["bytes"] != float64(11) {
		t.Errorf("access line: %s", lines[1])
	}
	// Every field the line has ever had, and no other.
	var keys []string
	for k := range access {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := "bytes client_ip duration level method msg request_id route status tenant_id time"; strings.Join(keys, " ") != want {
		t.Errorf("access line's fields: %s, want %s", strings.Join(keys, " "), want)
	}
	if access["level"] != "INFO" || access["method"] != "GET" || access["client_ip"] != "192.0.2.1" {
		t.Errorf("access line: %s", lines[1])
	}
	if at, err := time.Parse(time.RFC3339Nano, access["time"].(string)); err != nil || at.Before(before) || at.After(after) {
		t.Errorf("access line's time: %v (%v), want the request's, between %v and %v", access["time"], err, before, after)
	}
	if n := testutil.CollectAndCount(reg, "http_request_duration_seconds"); n != 1 {
		t.Errorf("%d series, want 1", n)
	}
	if got := histogramCount(t, reg, "GET", "/things/{id}", "201"); got != 3 {
		t.Errorf("GET /things/{id} 201 counted %d times, want 3", got)
	}

	// Without WithRequestID, and observed twice.
	logs.Reset()
	inner := httpx.Observe(logger, m, httpx.ClientIP{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.AddLogAttrs(r.Context(), slog.String("k", "v"))
		w.WriteHeader(http.StatusNoContent)
	}))
	httpx.Observe(logger, m, httpx.ClientIP{})(inner).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	lines = strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"k":"v"`) || !strings.Contains(lines[0], `"status":204`) || !strings.Contains(lines[1], `"status":204`) {
		t.Errorf("nested Observe's lines:\n%s", logs.String())
	}
}

func histogramCount(t *testing.T, reg *prometheus.Registry, labels ...string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var got []string
			for _, l := range m.GetLabel() {
				got = append(got, l.GetValue())
			}
			// Labels come sorted by name: method, route, status.
			if strings.Join(got, " ") == strings.Join(labels, " ") {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

// BenchmarkObserve: the request id, the access log line (JSON, to nowhere) and the metrics of
// one request, with a tenant attribute as authentication adds it.
func BenchmarkObserve(b *testing.B) {
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	m := httpx.NewMetrics(prometheus.NewRegistry())
	tenant := uuid.New()
	r := chi.NewRouter()
	r.Use(httpx.WithRequestID, httpx.Observe(logger, m, httpx.ClientIP{}))
	r.Get("/things/{id}", func(w http.ResponseWriter, r *http.Request) {
		httpx.AddLogAttrs(r.Context(), slog.Any("tenant_id", tenant))
		w.WriteHeader(http.StatusNoContent)
	})
	req := httptest.NewRequest("GET", "/things/7", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		r.ServeHTTP(w, req)
	}
}
