package events

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/saasbase/saasbase/internal/platform/tracing"
)

// How events carry a trace: Outbox.Append stores the traceparent of the writing transaction;
// the relay reads it back (only while tracing is on) and starts a span of its round, linked
// to each event's trace; Kafka carries it in the record's headers (kotel); a consumer applies
// a run of events in a span of the first event's trace, and any event of another trace in a
// span of that trace, linked to the run's. So a request's trace shows the consumers of its
// events, and, through the delivery's own traceparent, each webhook delivery.

const instrumentation = "github.com/saasbase/saasbase/internal/events"

// Span attributes of the pipeline.
var (
	attrConsumer  = attribute.Key("saasbase.consumer")
	attrEventType = attribute.Key("saasbase.event.type")
	attrEventID   = attribute.Key("saasbase.event.id")
	attrTenantID  = attribute.Key("saasbase.tenant.id")
	attrEvents    = attribute.Key("saasbase.events")
)

// querier runs a query: a transaction, or a connection in one.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// traceRound reads the traceparents of a round's events into evs and starts the round's span,
// linked to every event's trace. Without tracing it does nothing and answers ctx's span (a
// no-op to end).
func (r *Relay) traceRound(ctx context.Context, tx querier, evs []Event) (context.Context, trace.Span, error) {
	if r.Tracing == nil {
		return ctx, trace.SpanFromContext(ctx), nil
	}
	tenants, ids := make([]uuid.UUID, len(evs)), make([]uuid.UUID, len(evs))
	at := make(map[uuid.UUID]int, len(evs))
	for i, e := range evs {
		tenants[i], ids[i], at[e.ID] = e.Tenant(), e.ID, i
	}
	rows, _ := tx.Query(ctx, "SELECT id, traceparent FROM app.outbox_traceparents($1, $2)", tenants, ids)
	var (
		id uuid.UUID
		tp string
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &tp}, func() error {
		if i, ok := at[id]; ok {
			evs[i].TraceParent = tp
		}
		return nil
	}); err != nil {
		return ctx, nil, fmt.Errorf("outbox.relay: read traceparents: %w", err)
	}
	var links []trace.Link
	for _, e := range evs {
		if sc := tracing.SpanContext(e.TraceParent); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	ctx, span := r.Tracing.Provider().Tracer(instrumentation).Start(ctx, "outbox relay",
		trace.WithLinks(links...), trace.WithAttributes(attrEvents.Int(len(evs))))
	return ctx, span, nil
}

// traceRun starts the span of c's run of one tenant's events: in the trace of the first
// event, linked to the traces of the others. Without a traced first event, it starts nothing.
func (cs *Consumers) traceRun(ctx context.Context, c Consumer, run []Event) (context.Context, func(error)) {
	if cs.Tracing == nil || run[0].TraceParent == "" {
		return ctx, ignore
	}
	var links []trace.Link
	first := tracing.SpanContext(run[0].TraceParent)
	for _, e := range run[1:] {
		if sc := tracing.SpanContext(e.TraceParent); sc.IsValid() && sc.TraceID() != first.TraceID() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	attrs := []attribute.KeyValue{attrConsumer.String(c.Name), attrTenantID.String(run[0].Tenant().String()), attrEvents.Int(len(run))}
	if len(run) == 1 {
		attrs = append(attrs, attrEventType.String(run[0].Type), attrEventID.String(run[0].ID.String()))
	}
	ctx, span := cs.Tracing.Children().Tracer(instrumentation).Start(tracing.WithTraceParent(ctx, run[0].TraceParent),
		"consume "+c.Name, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(links...), trace.WithAttributes(attrs...))
	return ctx, ender(span)
}

// traceApply starts a span for applying e when ctx is not in e's trace already (e is not the
// first of its run): in e's trace, linked to the run's span.
func (cs *Consumers) traceApply(ctx context.Context, c Consumer, e Event) (context.Context, func(error)) {
	if cs.Tracing == nil || e.TraceParent == "" {
		return ctx, ignore
	}
	sc, run := tracing.SpanContext(e.TraceParent), trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || sc.TraceID() == run.TraceID() {
		return ctx, ignore
	}
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attrConsumer.String(c.Name), attrTenantID.String(e.Tenant().String()),
			attrEventType.String(e.Type), attrEventID.String(e.ID.String())),
	}
	if run.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: run}))
	}
	ctx, span := cs.Tracing.Children().Tracer(instrumentation).Start(
		trace.ContextWithRemoteSpanContext(ctx, sc), "consume "+c.Name, opts...)
	return ctx, ender(span)
}

func ignore(error) {}

// ender ends span, marking it failed by a non-nil error.
func ender(span trace.Span) func(error) {
	return func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "")
		}
		span.End()
	}
}

// kafkaHooks are the client hooks that trace produce and fetch (kotel): a record's
// traceparent header continues the trace of its event (see record and consumeFetches).
func kafkaHooks(t *tracing.Tracing, opts ...kotel.TracerOpt) []kgo.Opt {
	if t == nil {
		return nil
	}
	opts = append(opts, kotel.TracerProvider(t.Children()), kotel.TracerPropagator(t.Propagator()))
	k := kotel.NewKotel(kotel.WithTracer(kotel.NewTracer(opts...)))
	return []kgo.Opt{kgo.WithHooks(k.Hooks()...)}
}
