package events_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/tracing"
)

// An event carries the trace of the transaction that wrote it across the outbox, on either
// transport: the consumer applies it in a span of that trace (through Kafka's publish and
// receive spans on Kafka), its handler's context is in that span, and the relay's round is a
// trace of its own linked to it.
func TestTraceCrossesThePipeline(t *testing.T) {
	for _, transport := range []string{"inprocess", "kafka"} {
		t.Run(transport, func(t *testing.T) {
			h := newHarness(t)
			exp := tracetest.NewInMemoryExporter()
			tr := tracing.NewWith(sdktrace.WithSyncer(exp))

			var (
				mu      sync.Mutex
				handled = map[uuid.UUID]trace.SpanContext{}
			)
			consumer := name("traced")
			cs := h.consumers(events.Consumer{Name: consumer, Handle: func(ctx context.Context, tx pgx.Tx, e events.Event) error {
				mu.Lock()
				defer mu.Unlock()
				handled[e.ID] = trace.SpanContextFromContext(ctx)
				return nil
			}})
			cs.Tracing = tr
			var tp events.Transport = events.NewInProcess(8, cs.Names()...)
			if transport == "kafka" {
				tp = tracedKafka(t, tr)
			}
			relay := h.relay(tp)
			relay.Tracing = tr
			startConsumers(t, cs, tp)
			run(t, relay.Run)

			// The writing transaction, as a request's handler runs it.
			tenant := uuid.New()
			ctx, request := tr.Provider().Tracer("test").Start(context.Background(), "request")
			err := h.db.InTenantTx(ctx, tenant, func(tx pgx.Tx) error {
				return h.outbox.Append(ctx, tx, tenant, "test.traced", seqData{Seq: 1})
			})
			request.End()
			if err != nil {
				t.Fatal(err)
			}
			var eventID uuid.UUID
			if err := h.owner.QueryRow(ctx, "SELECT id FROM outbox WHERE tenant_id = $1", tenant).Scan(&eventID); err != nil {
				t.Fatal(err)
			}
			// Spans are exported as they end: the consumer's once its run settled, the relay's
			// once its round committed.
			var (
				spans          map[trace.SpanID]sdktrace.ReadOnlySpan
				consume, round sdktrace.ReadOnlySpan
			)
			found := func() bool {
				spans, consume, round = map[trace.SpanID]sdktrace.ReadOnlySpan{}, nil, nil
				for _, s := range exp.GetSpans().Snapshots() {
					spans[s.SpanContext().SpanID()] = s
					switch s.Name() {
					case "consume " + consumer:
						consume = s
					case "outbox relay":
						for _, l := range s.Links() {
							if l.SpanContext.TraceID() == request.SpanContext().TraceID() {
								round = s
							}
						}
					}
				}
				return consume != nil && round != nil
			}
			for deadline := time.Now().Add(60 * time.Second); !found(); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("no consume span or relay round after 60s; spans: %v", spanNames(spans))
				}
			}
			if consume.SpanContext().TraceID() != request.SpanContext().TraceID() {
				t.Fatalf("the consume span is not in the request's trace; spans: %v", spanNames(spans))
			}
			mu.Lock()
			in := handled[eventID]
			mu.Unlock()
			if in.SpanID() != consume.SpanContext().SpanID() {
				t.Errorf("the handler ran in span %s, want the consume span %s", in.SpanID(), consume.SpanContext().SpanID())
			}
			// The consume span's ancestors, up to the request's span.
			var path []string
			for p := consume.Parent(); p.IsValid() && p.SpanID() != request.SpanContext().SpanID(); {
				s, ok := spans[p.SpanID()]
				if !ok {
					t.Fatalf("consume span's ancestor %s is not exported; path so far %v", p.SpanID(), path)
				}
				path = append(path, s.Name())
				p = s.Parent()
			}
			want := "[]"
			if transport == "kafka" {
				want = "[events receive events publish]"
			}
			if fmt.Sprint(path) != want {
				t.Errorf("between the request and its consumer: %v, want %s", path, want)
			}
			if round.SpanContext().TraceID() == request.SpanContext().TraceID() {
				t.Errorf("the relay round is inside the request's trace; it should be a trace of its own")
			}
		})
	}
}

func tracedKafka(t *testing.T, tr *tracing.Tracing) *events.Kafka {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "events"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	k, err := events.NewKafka(events.KafkaConfig{
		Brokers: cluster.ListenAddrs(), Topic: "events", GroupPrefix: fmt.Sprintf("test-%s.", uuid.NewString()[:8]),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Tracing: tr,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

func spanNames(spans map[trace.SpanID]sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}
