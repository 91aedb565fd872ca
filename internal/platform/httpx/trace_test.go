package httpx_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/tracing"
)

const callerTrace, callerSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"

// The server span is named for the route pattern and carries the status and the principal;
// a caller's traceparent is continued only from a trusted proxy, and linked otherwise.
func TestTraceServerSpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr := tracing.NewWith(sdktrace.WithSyncer(exp))
	tenant := uuid.New()
	serve := func(trusted []netip.Prefix, path string) sdktrace.ReadOnlySpan {
		t.Helper()
		exp.Reset()
		r := chi.NewRouter()
		r.Use(httpx.Trace(tr, httpx.ClientIP{Trusted: trusted}))
		r.Get("/v1/projects/{id}", func(w http.ResponseWriter, r *http.Request) {
			httpx.SpanPrincipal(r.Context(), tenant, "api_key")
			w.WriteHeader(http.StatusNoContent)
		})
		r.Get("/boom", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
		req := httptest.NewRequest("GET", path, nil)
		req.RemoteAddr = "10.1.2.3:5555"
		req.Header.Set("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
		r.ServeHTTP(httptest.NewRecorder(), req)
		spans := exp.GetSpans().Snapshots()
		if len(spans) != 1 {
			t.Fatalf("%d spans, want 1", len(spans))
		}
		return spans[0]
	}
	attrs := func(s sdktrace.ReadOnlySpan) map[string]string {
		m := map[string]string{}
		for _, kv := range s.Attributes() {
			m[string(kv.Key)] = kv.Value.Emit()
		}
		return m
	}

	s := serve([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "/v1/projects/42")
	a := attrs(s)
	if s.Name() != "GET /v1/projects/{id}" || a["http.route"] != "/v1/projects/{id}" || a["http.response.status_code"] != "204" ||
		a["saasbase.tenant.id"] != tenant.String() || a["saasbase.principal.kind"] != "api_key" {
		t.Errorf("span %q %v", s.Name(), a)
	}
	if s.SpanContext().TraceID().String() != callerTrace || s.Parent().SpanID().String() != callerSpan {
		t.Errorf("from a trusted proxy: trace %s parent %s, want the caller's", s.SpanContext().TraceID(), s.Parent().SpanID())
	}

	s = serve(nil, "/v1/projects/42")
	if s.SpanContext().TraceID().String() == callerTrace || s.Parent().IsValid() {
		t.Errorf("from an untrusted peer the caller's trace was continued")
	}
	if l := s.Links(); len(l) != 1 || l[0].SpanContext.TraceID().String() != callerTrace {
		t.Errorf("from an untrusted peer: links %v, want the caller's trace", l)
	}

	if s = serve(nil, "/boom"); s.Status().Code != codes.Error {
		t.Errorf("a 502 left the span's status %v", s.Status())
	}
}
