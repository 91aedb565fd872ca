package webhook

import (
	"context"
	"net/url"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/saasbase/saasbase/internal/platform/tracing"
)

// trace starts the span of an attempt of m, in the trace the delivery was made in, and
// answers the function that ends it with the attempt's result and the error of recording it.
// An untraced delivery gets no span.
func (d *Deliverer) trace(ctx context.Context, m message) (context.Context, func(result, error)) {
	if d.Tracing == nil || m.traceparent == "" {
		return ctx, func(result, error) {}
	}
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String("POST"),
		attribute.String("saasbase.tenant.id", m.tenant.String()),
		attribute.String("saasbase.webhook.endpoint.id", m.endpoint.String()),
		attribute.String("saasbase.event.id", m.eventID.String()),
	}
	if u, err := url.Parse(m.url); err == nil {
		attrs = append(attrs, semconv.ServerAddress(u.Hostname())) // not the path or query: they may hold a token
	}
	ctx, span := d.Tracing.Children().Tracer("github.com/saasbase/saasbase/internal/events/webhook").Start(
		tracing.WithTraceParent(ctx, m.traceparent), "webhook deliver",
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx, func(r result, err error) {
		span.SetAttributes(attribute.String("saasbase.webhook.outcome", r.outcome))
		if r.status != 0 {
			span.SetAttributes(semconv.HTTPResponseStatusCode(r.status))
		}
		switch {
		case err != nil:
			span.RecordError(err)
			span.SetStatus(codes.Error, "not recorded")
		case r.outcome != outcomeSuccess:
			span.SetStatus(codes.Error, r.outcome)
		}
		span.End()
	}
}
