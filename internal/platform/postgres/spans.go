package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// spanTracer makes a client span of every statement run under a sampled span, and of every
// batch with a span of each of its statements. A span names the statement's operation and
// table and carries its text, never its arguments: they may be secrets.
type spanTracer struct {
	tracer trace.Tracer
}

func newSpanTracer(tp trace.TracerProvider) *spanTracer {
	return &spanTracer{tracer: tp.Tracer("github.com/saasbase/saasbase/internal/platform/postgres")}
}

var dbSystem = semconv.DBSystemNamePostgreSQL

func (t *spanTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		return ctx
	}
	op, summary := summarize(data.SQL)
	ctx, _ = t.tracer.Start(ctx, summary, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		dbSystem, semconv.DBOperationName(op), semconv.DBQuerySummary(summary), semconv.DBQueryText(data.SQL)))
	return ctx
}

func (t *spanTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	end(trace.SpanFromContext(ctx), data.Err)
}

// batchSpan is the span of a batch in flight, in the context its statements are traced with.
type batchSpan struct{ span trace.Span }

type batchKey struct{}

func (t *spanTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		return ctx
	}
	ctx, span := t.tracer.Start(ctx, "batch", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		dbSystem, semconv.DBOperationName("BATCH"), semconv.DBOperationBatchSize(data.Batch.Len())))
	return context.WithValue(ctx, batchKey{}, batchSpan{span})
}

// TraceBatchQuery is called once a statement's result has been read: its span runs from when
// pgx began reading it.
func (t *spanTracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	if _, ok := ctx.Value(batchKey{}).(batchSpan); !ok {
		return
	}
	op, summary := summarize(data.SQL)
	start := data.ReadStartTime
	if start.IsZero() {
		start = time.Now()
	}
	_, span := t.tracer.Start(ctx, summary, trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start), trace.WithAttributes(
		dbSystem, semconv.DBOperationName(op), semconv.DBQuerySummary(summary), semconv.DBQueryText(data.SQL)))
	end(span, data.Err)
}

func (t *spanTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchEndData) {
	if b, ok := ctx.Value(batchKey{}).(batchSpan); ok {
		end(b.span, data.Err)
	}
}

func end(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "")
	}
	span.End()
}

// summarize answers a statement's operation (its first keyword) and a short name of it, the
// operation and the table or function it works on ("INSERT outbox", "SELECT
// app.outbox_unpublished", "SELECT set_config"), from the first words of the text alone.
func summarize(sql string) (op, summary string) {
	const look = 400 // the target is near the start; no need to split a long statement
	if len(sql) > look {
		sql = sql[:look]
	}
	words := strings.Fields(sql)
	if len(words) == 0 {
		return "", "SQL"
	}
	op = strings.ToUpper(words[0])
	after := ""
	switch op {
	case "INSERT":
		after = "INTO"
	case "SELECT", "DELETE":
		after = "FROM"
	case "UPDATE":
		if len(words) > 1 {
			return op, op + " " + target(words[1])
		}
	}
	if after != "" {
		for i, w := range words[:len(words)-1] {
			if strings.EqualFold(w, after) {
				return op, op + " " + target(words[i+1])
			}
		}
	}
	if op == "SELECT" && len(words) > 1 && strings.Contains(words[1], "(") {
		return op, op + " " + target(words[1]) // a function called for its effect: set_config
	}
	return op, op
}

// target trims a table or function name out of the word that holds it.
func target(w string) string {
	if i := strings.IndexAny(w, "(,;"); i >= 0 {
		w = w[:i]
	}
	return w
}
