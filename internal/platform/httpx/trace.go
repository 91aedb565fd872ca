package httpx

import (
	"context"
	"net/http"
	"strconv"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/saasbase/saasbase/internal/platform/tracing"
)

// Trace makes the server span of each request, the root of its trace: named for its route
// pattern once routing has found it, with the status. Authentication adds the tenant and the
// kind of principal (SpanPrincipal). It goes before Observe, so that the access log line
// carries the trace id.
//
// A caller's traceparent is continued only when the direct peer is a trusted proxy (ip):
// otherwise anyone could choose our sampling decision, or graft our spans onto a trace of
// their own; the span starts a new trace and links to the caller's.
func Trace(t *tracing.Tracing, ip ClientIP) func(http.Handler) http.Handler {
	tracer := t.Provider().Tracer("github.com/saasbase/saasbase/internal/platform/httpx")
	prop := t.Propagator()
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			method := methodLabel(r.Method)
			opts := []trace.SpanStartOption{
				trace.WithSpanKind(trace.SpanKindServer),
				// Not the path: the route names the request, and a path may carry a token.
				trace.WithAttributes(semconv.HTTPRequestMethodKey.String(method)),
			}
			if remote := trace.SpanContextFromContext(prop.Extract(ctx, propagation.HeaderCarrier(r.Header))); remote.IsValid() {
				if ip.peerTrusted(r) {
					ctx = trace.ContextWithRemoteSpanContext(ctx, remote)
				} else {
					opts = append(opts, trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: remote}))
				}
			}
			ctx, span := tracer.Start(ctx, method, opts...)
			defer span.End()
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r.WithContext(ctx))
			if !span.IsRecording() {
				return
			}
			if sw.status == 0 {
				sw.status = http.StatusOK
			}
			route := routeLabel(r)
			span.SetName(method + " " + route)
			span.SetAttributes(semconv.HTTPRoute(route), semconv.HTTPResponseStatusCode(sw.status))
			if sw.status >= 500 {
				span.SetStatus(codes.Error, strconv.Itoa(sw.status))
			}
		})
	}
}

// Principal attributes of a request's server span.
const (
	AttrTenantID      = attribute.Key("saasbase.tenant.id")
	AttrPrincipalKind = attribute.Key("saasbase.principal.kind")
)

// SpanPrincipal records who is calling on the request's span, if it is recording: the tenant
// (none for operators: uuid.Nil) and the kind of principal. Nothing of the credential.
func SpanPrincipal(ctx context.Context, tenantID uuid.UUID, kind string) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(AttrPrincipalKind.String(kind))
	if tenantID != uuid.Nil {
		span.SetAttributes(AttrTenantID.String(tenantID.String()))
	}
}
