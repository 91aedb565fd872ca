package server_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"log/slog"

	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/platform/tracing"
	"github.com/saasbase/saasbase/internal/platform/tracing/jaegertest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// TestTracing runs the service with tracing configured by the OTEL_* variables alone,
// exporting to a real Jaeger, and follows one POST /v1/projects through it: one trace holds
// the request's server span (route, status, tenant, kind of principal, and no secret), its
// SQL statements with the outbox insert, the webhook consumer that applied its
// project.created event and the webhook delivery, whose receiver got a traceparent of that
// trace; the relay's round links to it; the request's log lines carry its trace id. Both
// OTLP protocols reach Jaeger.
func TestTracing(t *testing.T) {
	j := jaegertest.Start(t)
	ctx := context.Background()

	t.Run("protocols", func(t *testing.T) {
		for _, protocol := range []string{"grpc", "http/protobuf"} {
			endpoint := j.OTLPGRPC
			if protocol == "http/protobuf" {
				endpoint = j.OTLPHTTP
			}
			service := "saasbase-protocol-" + strings.ReplaceAll(protocol, "/", "-")
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
			t.Setenv("OTEL_SERVICE_NAME", service)
			tr, err := tracing.New(ctx, os.Getenv)
			if err != nil || tr == nil {
				t.Fatalf("tracing.New over %s: %v, %v", protocol, tr, err)
			}
			_, span := tr.Provider().Tracer("test").Start(ctx, "probe")
			id := span.SpanContext().TraceID().String()
			span.End()
			if err := tr.Shutdown(ctx); err != nil {
				t.Fatalf("%s: export: %v", protocol, err)
			}
			got := pollTrace(t, j, id, func(tr *jaegertest.Trace) bool { return len(tr.Spans) == 1 })
			if got.Spans[0].OperationName != "probe" {
				t.Errorf("%s: span %q, want probe", protocol, got.Spans[0].OperationName)
			}
		}
	})

	t.Run("request", func(t *testing.T) {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", j.OTLPGRPC)
		t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
		t.Setenv("OTEL_SERVICE_NAME", "saasbase-test")
		t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
		t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
		tr, err := tracing.New(ctx, os.Getenv)
		if err != nil || tr == nil {
			t.Fatalf("tracing.New: %v, %v", tr, err)
		}
		t.Cleanup(func() { tr.Shutdown(context.Background()) })
		var logs lockedBuffer
		s := servertest.NewWith(t, servertest.Options{
			Tracing: tr,
			Logger:  slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		}, func(c *config.Config) {
			c.WebhooksAllowPrivate = true // the receiver listens on loopback
			// The test client stands for a trusted proxy, whose traceparent the service continues.
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		})
		runJobs(t, s)

		traceparents := make(chan string, 16)
		receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			traceparents <- r.Header.Get("traceparent")
		}))
		t.Cleanup(receiver.Close)
		ten := s.Signup(t, "traced")
		var ep struct{ Secret string }
		res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/webhook-endpoints", Token: ten.Token,
			Body: map[string]any{"url": receiver.URL + "/hooks", "event_types": []string{"project.created"}}})
		res.Want(t, http.StatusCreated, "")
		res.Decode(t, &ep)

		traceID, parentID := randomHexID(16), randomHexID(8)
		res = s.Do(t, servertest.Request{Method: "POST", Path: "/v1/projects", Token: ten.Token,
			Body:   map[string]string{"name": "Traced"},
			Header: map[string]string{"traceparent": "00-" + traceID + "-" + parentID + "-01"}})
		res.Want(t, http.StatusCreated, "")

		// The receiver's traceparent is of the request's trace.
		var delivered string
		select {
		case delivered = <-traceparents:
		case <-time.After(60 * time.Second):
			t.Fatal("no webhook delivery within 60s")
		}
		if !strings.HasPrefix(delivered, "00-"+traceID+"-") {
			t.Fatalf("webhook traceparent %q, want one of trace %s", delivered, traceID)
		}

		// Everything below is in the one trace, once exported.
		got := pollTrace(t, j, traceID, func(tr *jaegertest.Trace) bool {
			return find(tr, "POST /v1/projects") != nil && find(tr, "webhook deliver") != nil && find(tr, "consume webhooks") != nil
		})
		t.Logf("trace %s: %s", traceID, names(got))
		server := find(got, "POST /v1/projects")
		if p := server.Parent(); p != parentID {
			t.Errorf("server span's parent %q, want the caller's %s", p, parentID)
		}
		for key, want := range map[string]string{
			"http.route": "/v1/projects", "http.response.status_code": "201", "http.request.method": "POST",
			"saasbase.tenant.id": ten.ID, "saasbase.principal.kind": "user", "span.kind": "server",
		} {
			if v, _ := server.Tag(key); v != want {
				t.Errorf("server span %s = %q, want %q", key, v, want)
			}
		}
		byID := map[string]jaegertest.Span{}
		for _, sp := range got.Spans {
			byID[sp.SpanID] = sp
		}
		// under reports whether sp descends from the span of id.
		under := func(sp jaegertest.Span, id string) bool {
			for p := sp.Parent(); p != ""; p = byID[p].Parent() {
				if p == id {
					return true
				}
			}
			return false
		}
		var sqlUnder, outboxUnder bool
		for _, sp := range got.Spans {
			if q, ok := sp.Tag("db.query.text"); ok && under(sp, server.SpanID) {
				sqlUnder = true
				outboxUnder = outboxUnder || strings.HasPrefix(q, "INSERT INTO outbox")
			}
		}
		if !sqlUnder || !outboxUnder {
			t.Errorf("SQL spans under the server span: %v, the outbox insert among them: %v; spans: %s", sqlUnder, outboxUnder, names(got))
		}
		consume := find(got, "consume webhooks")
		if typ, _ := consume.Tag("saasbase.event.type"); typ != "project.created" || !under(*consume, server.SpanID) {
			t.Errorf("consumer span (event %q) is not under the request's span; spans: %s", typ, names(got))
		}
		deliver := find(got, "webhook deliver")
		if status, _ := deliver.Tag("http.response.status_code"); status != "200" || !under(*deliver, consume.SpanID) {
			t.Errorf("delivery span (status %q) is not under the consumer's; spans: %s", status, names(got))
		}
		if want := "00-" + traceID + "-" + deliver.SpanID + "-01"; delivered != want {
			t.Errorf("webhook traceparent %q, want the delivery span's %q", delivered, want)
		}
		for _, sp := range got.Spans {
			for _, tag := range sp.Tags {
				v := fmt.Sprint(tag.Value)
				if strings.Contains(v, ten.Token) || strings.Contains(v, ep.Secret) || strings.Contains(v, "Bearer") {
					t.Errorf("span %s tag %s shows a secret: %s", sp.OperationName, tag.Key, v)
				}
			}
		}

		// The relay's round is a trace of its own that links to the request's.
		deadline := time.Now().Add(60 * time.Second)
		for linked := false; !linked; {
			rounds, err := j.Find(ctx, "saasbase-test", "outbox relay")
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rounds {
				for _, sp := range r.Spans {
					for _, ref := range sp.References {
						linked = linked || ref.RefType == "FOLLOWS_FROM" && ref.TraceID == traceID
					}
				}
			}
			if !linked && time.Now().After(deadline) {
				t.Fatalf("no relay round linked to trace %s within 60s", traceID)
			}
			time.Sleep(200 * time.Millisecond)
		}

		// The request's log lines carry its trace id; its access log line its server span too.
		var access bool
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil || line["msg"] != "request" || line["route"] != "/v1/projects" || line["method"] != "POST" {
				continue
			}
			access = true
			if line["tenant_id"] != ten.ID {
				t.Errorf("access log line has tenant %v, want %s: %s", line["tenant_id"], ten.ID, sc.Bytes())
			}
			if line["trace_id"] != traceID || line["span_id"] != server.SpanID {
				t.Errorf("access log line has trace %v span %v, want %s %s: %s", line["trace_id"], line["span_id"], traceID, server.SpanID, sc.Bytes())
			}
		}
		if !access {
			t.Errorf("no access log line of POST /v1/projects:\n%s", logs.String())
		}
	})
}

// runJobs runs the service's background work (relay, consumers, deliverer) until the test ends.
func runJobs(t *testing.T, s *servertest.Server) {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		wg.Go(func() { s.App.RunReplica(ctx) })
		wg.Go(func() { s.App.RunBackground(ctx) })
		wg.Wait()
	}()
	t.Cleanup(func() { stop(); <-done })
}

// pollTrace waits up to 60s until Jaeger has trace id and done holds for it.
func pollTrace(t *testing.T, j *jaegertest.Jaeger, id string, done func(*jaegertest.Trace) bool) *jaegertest.Trace {
	t.Helper()
	var last *jaegertest.Trace
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		tr, err := j.Trace(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if tr != nil && done(tr) {
			return tr
		}
		last = tr
	}
	if last == nil {
		t.Fatalf("trace %s not in Jaeger after 60s", id)
	}
	t.Fatalf("trace %s incomplete after 60s; spans: %s", id, names(last))
	return nil
}

func find(tr *jaegertest.Trace, operation string) *jaegertest.Span {
	for i, sp := range tr.Spans {
		if sp.OperationName == operation {
			return &tr.Spans[i]
		}
	}
	return nil
}

func names(tr *jaegertest.Trace) string {
	var out []string
	for _, sp := range tr.Spans {
		out = append(out, sp.OperationName)
	}
	return strings.Join(out, ", ")
}

func randomHexID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
