package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/saasbase/saasbase/internal/platform/tracing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// Tracing is off, and costs nothing, unless the OTEL_* variables turn it on.
func TestNewIsOffUnlessConfigured(t *testing.T) {
	for _, vars := range []map[string]string{
		{},
		{"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"},
	} {
		tr, err := tracing.New(context.Background(), env(vars))
		if tr != nil || err != nil {
			t.Errorf("%v: tracing %v, error %v; want off", vars, tr, err)
		}
	}
	for _, vars := range []map[string]string{
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
		{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
	} {
		tr, err := tracing.New(context.Background(), env(vars))
		if tr == nil || err != nil {
			t.Errorf("%v: tracing %v, error %v; want on", vars, tr, err)
			continue
		}
		tr.Shutdown(context.Background())
	}
}

// A mistyped variable stops the start, naming itself, rather than trace otherwise than asked.
func TestNewRefusesBadValues(t *testing.T) {
	on := "http://127.0.0.1:4318"
	for name, vars := range map[string]map[string]string{
		"OTEL_TRACES_SAMPLER_ARG":     {"OTEL_EXPORTER_OTLP_ENDPOINT": on, "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "10%"},
		"OTEL_TRACES_SAMPLER":         {"OTEL_EXPORTER_OTLP_ENDPOINT": on, "OTEL_TRACES_SAMPLER": "sometimes"},
		"OTEL_EXPORTER_OTLP_PROTOCOL": {"OTEL_EXPORTER_OTLP_ENDPOINT": on, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
		"OTEL_TRACES_EXPORTER":        {"OTEL_TRACES_EXPORTER": "zipkin"},
		"OTEL_SDK_DISABLED":           {"OTEL_SDK_DISABLED": "maybe"},
	} {
		tr, err := tracing.New(context.Background(), env(vars))
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%v: tracing %v, error %v; want an error naming %s", vars, tr, err, name)
		}
	}
}

func inMemory(sampler sdktrace.Sampler) (*tracing.Tracing, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	return tracing.NewWith(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sampler)), exp
}

// Children make spans under a sampled parent only: no root of their own, nothing under a
// trace the sampler left out.
func TestChildrenOnlyUnderSampledParent(t *testing.T) {
	tr, exp := inMemory(sdktrace.ParentBased(sdktrace.AlwaysSample()))
	child := tr.Children().Tracer("t")
	ctx := context.Background()

	_, orphan := child.Start(ctx, "orphan")
	orphan.End()
	pctx, parent := tr.Provider().Tracer("t").Start(ctx, "parent")
	_, kid := child.Start(pctx, "child")
	kid.End()
	parent.End()
	remote := tracing.WithTraceParent(ctx, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	_, fromRemote := child.Start(remote, "remote child")
	fromRemote.End()
	unsampled := tracing.WithTraceParent(ctx, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
	_, skipped := child.Start(unsampled, "unsampled child")
	skipped.End()

	var got []string
	for _, s := range exp.GetSpans() {
		got = append(got, s.Name)
	}
	if strings.Join(got, ",") != "child,parent,remote child" {
		t.Errorf("exported %v, want child, parent, remote child", got)
	}
}

// A traceparent written out and read back names the same span.
func TestTraceParentRoundTrip(t *testing.T) {
	tr, _ := inMemory(sdktrace.AlwaysSample())
	ctx, span := tr.Provider().Tracer("t").Start(context.Background(), "s")
	defer span.End()
	tp := tracing.TraceParent(ctx)
	if sc := tracing.SpanContext(tp); !sc.Equal(trace.SpanContextFromContext(ctx).WithRemote(true)) {
		t.Errorf("%q read back as %v, want %v", tp, sc, span.SpanContext())
	}
	if tracing.TraceParent(context.Background()) != "" || tracing.SpanContext("garbage").IsValid() {
		t.Error("no span or a malformed traceparent must name no span")
	}
}

// Log lines carry the trace and span ids of a recording span, and nothing otherwise.
func TestLogHandlerAddsTraceIDs(t *testing.T) {
	tr, _ := inMemory(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)))
	var buf bytes.Buffer
	log := slog.New(tracing.LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "test")

	recorded, _ := inMemory(sdktrace.AlwaysSample())
	ctx, span := recorded.Provider().Tracer("t").Start(context.Background(), "s")
	log.InfoContext(ctx, "traced")
	span.End()
	unctx, unsampled := tr.Provider().Tracer("t").Start(context.Background(), "s")
	log.InfoContext(unctx, "not sampled")
	unsampled.End()
	log.Info("no context")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines: %s", len(lines), buf.String())
	}
	var first map[string]any
	json.Unmarshal([]byte(lines[0]), &first)
	sc := span.SpanContext()
	if first["trace_id"] != sc.TraceID().String() || first["span_id"] != sc.SpanID().String() || first["component"] != "test" {
		t.Errorf("traced line %s, want trace %s span %s", lines[0], sc.TraceID(), sc.SpanID())
	}
	for _, l := range lines[1:] {
		if strings.Contains(l, "trace_id") {
			t.Errorf("line without a recording span has a trace id: %s", l)
		}
	}
}
