// Package tracing sets up OpenTelemetry tracing from the standard OTEL_* variables and holds
// the small pieces every instrumented part shares: the provider, W3C trace context, the
// traceparent that crosses the outbox, and trace ids on log lines.
//
// Tracing is off unless configured (New answers nil), and off costs nothing: the caller
// installs no middleware, hook or wrapper at all. See docs/operations.md, "Tracing".
package tracing

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// ServiceName is the service.name of spans unless OTEL_SERVICE_NAME says otherwise.
const ServiceName = "saasbase"

// Tracing is a configured tracer provider with its propagator.
type Tracing struct {
	sdk        *sdktrace.TracerProvider
	children   trace.TracerProvider
	propagator propagation.TextMapPropagator
}

// New reads the OTEL_* variables through getenv and answers nil, and no error, when tracing
// is off: OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none, or neither OTEL_TRACES_EXPORTER
// nor an OTLP endpoint set. Otherwise spans go through a batch span processor to an OTLP
// exporter speaking OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL (grpc, or http/protobuf, the
// default), sampled as OTEL_TRACES_SAMPLER[_ARG] say (parentbased_always_on by default).
//
// The exporter and the batch processor read the rest of their variables (endpoint, headers,
// timeout, certificates, OTEL_BSP_*) from the process environment themselves, as do the
// resource's (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES).
func New(ctx context.Context, getenv func(string) string) (*Tracing, error) {
	on, err := enabled(getenv)
	if err != nil || !on {
		return nil, err
	}
	sampler, err := samplerFrom(getenv)
	if err != nil {
		return nil, err
	}
	exporter, err := exporterFrom(ctx, getenv)
	if err != nil {
		return nil, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(ServiceName)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the default name
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithProcessPID(),
	)
	if err != nil && res == nil {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	return NewWith(sdktrace.WithBatcher(exporter), sdktrace.WithSampler(sampler), sdktrace.WithResource(res)), nil
}

// NewWith builds tracing on an SDK provider configured by opts (tests and benchmarks give an
// exporter and a sampler of their own).
func NewWith(opts ...sdktrace.TracerProviderOption) *Tracing {
	sdk := sdktrace.NewTracerProvider(opts...)
	return &Tracing{sdk: sdk, children: childProvider{tp: sdk}, propagator: propagation.TraceContext{}}
}

// Provider makes spans of every kind, roots included: for the server span of a request and
// the spans of background work that starts a trace (a relay round).
func (t *Tracing) Provider() trace.TracerProvider { return t.sdk }

// Children makes spans only under a sampled parent span, local or remote: for the spans of
// SQL statements, Redis commands and outgoing calls. Without it, every background poll (the
// relay's, every 200 ms) would be a trace of its own, and a request the sampler left out
// would still pay for the spans of its statements.
func (t *Tracing) Children() trace.TracerProvider { return t.children }

// Propagator is W3C trace context: how a trace crosses HTTP (traceparent) and Kafka headers.
func (t *Tracing) Propagator() propagation.TextMapPropagator { return t.propagator }

// Shutdown exports the spans still buffered, within ctx, and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.sdk.Shutdown(ctx) }

// ForceFlush exports the spans still buffered, within ctx.
func (t *Tracing) ForceFlush(ctx context.Context) error { return t.sdk.ForceFlush(ctx) }

// enabled decides whether tracing is on, as the specification's variables say.
func enabled(getenv func(string) string) (bool, error) {
	if v := strings.TrimSpace(getenv("OTEL_SDK_DISABLED")); v != "" {
		off, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("OTEL_SDK_DISABLED: %q is not true or false", v)
		}
		if off {
			return false, nil
		}
	}
	switch v := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))); v {
	case "none":
		return false, nil
	case "otlp":
		return true, nil
	case "":
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "", nil
	default:
		return false, fmt.Errorf("OTEL_TRACES_EXPORTER: %q is not supported: otlp or none", v)
	}
}

// exporterFrom builds the OTLP exporter of the configured protocol. Neither connects yet: the
// service starts while the collector is down, and spans are dropped until it answers.
func exporterFrom(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	name, protocol := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	if protocol == "" {
		name, protocol = "OTEL_EXPORTER_OTLP_PROTOCOL", strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch protocol {
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	case "http/protobuf", "":
		exp, err = otlptracehttp.New(ctx)
	default:
		return nil, fmt.Errorf("%s: %q is not supported: grpc or http/protobuf", name, protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	return exp, nil
}

// samplerFrom reads OTEL_TRACES_SAMPLER and its argument. The SDK would read them too, but
// would only log a bad value and sample everything; a mistyped ratio should stop the start.
func samplerFrom(getenv func(string) string) (sdktrace.Sampler, error) {
	name := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")))
	arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG"))
	ratio := func() (sdktrace.Sampler, error) {
		if arg == "" {
			return sdktrace.AlwaysSample(), nil
		}
		v, err := strconv.ParseFloat(arg, 64)
		if err != nil || v < 0 || v > 1 {
			return nil, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: %q is not a ratio from 0 to 1", arg)
		}
		return sdktrace.TraceIDRatioBased(v), nil
	}
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return ratio()
	case "parentbased_always_on", "":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		s, err := ratio()
		if err != nil {
			return nil, err
		}
		return sdktrace.ParentBased(s), nil
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER: %q is not supported: always_on, always_off, traceidratio, "+
		"parentbased_always_on, parentbased_always_off or parentbased_traceidratio", name)
}

// childProvider's tracers start a span only under a sampled parent; otherwise Start answers
// ctx as it is, and the span already in it (a non-recording one).
type childProvider struct {
	embedded.TracerProvider
	tp trace.TracerProvider
}

func (p childProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return childTracer{t: p.tp.Tracer(name, opts...)}
}

type childTracer struct {
	embedded.Tracer
	t trace.Tracer
}

func (t childTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.t.Start(ctx, name, opts...)
}

// TraceParent is the W3C traceparent of the span in ctx, "" without a valid one.
func TraceParent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// WithTraceParent answers ctx carrying traceparent's span as a remote parent, or ctx as it
// is if traceparent is "" or malformed.
func WithTraceParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// SpanContext is the span context a traceparent names: invalid if it is "" or malformed.
func SpanContext(traceparent string) trace.SpanContext {
	return trace.SpanContextFromContext(WithTraceParent(context.Background(), traceparent))
}
