package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/saasbase/saasbase/internal/platform/tracing"
	"github.com/saasbase/saasbase/internal/platform/tracing/jaegertest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// BenchmarkGetProjectTracing measures GET /v1/projects/{id} through the whole service with
// tracing off, on with the parent-based 10 % sampler, and on at 100 %, both exporting to a
// real Jaeger over OTLP/gRPC through the batch span processor. The three services share the
// database and serve the same project; their rounds alternate within one run, so that the
// load of a shared machine falls on all three alike. It reports each throughput and each
// traced one's ratio to off.
func BenchmarkGetProjectTracing(b *testing.B) {
	j := jaegertest.Start(b)
	traced := func(sampler sdktrace.Sampler) *tracing.Tracing {
		exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpointURL(j.OTLPGRPC))
		if err != nil {
			b.Fatal(err)
		}
		t := tracing.NewWith(sdktrace.WithBatcher(exp), sdktrace.WithSampler(sampler),
			sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("saasbase-bench"))))
		b.Cleanup(func() { t.Shutdown(context.Background()) })
		return t
	}
	configs := []struct {
		name    string
		tracing *tracing.Tracing
	}{
		{"off", nil},
		{"sampled10", traced(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.1)))},
		{"all100", traced(sdktrace.AlwaysSample())},
	}
	servers := make([]*servertest.Server, len(configs))
	for i, c := range configs {
		servers[i] = servertest.NewWith(b, servertest.Options{Tracing: c.tracing})
	}
	a := servers[0].Signup(b, "bench")
	id := servers[0].Create(b, a.Token, "/v1/projects", map[string]string{"name": "bench", "description": "a project"})

	const (
		workers = 16
		rounds  = 5
		round   = 2 * time.Second
	)
	runs := make([][]load, len(configs))
	for range b.N {
		for range rounds {
			for i, s := range servers {
				runs[i] = append(runs[i], drive(b, s.URL+"/v1/projects/"+id, a.Token, workers, round))
			}
		}
	}
	b.ReportMetric(0, "ns/op")
	off := median(runs[0])
	for i, c := range configs {
		m := median(runs[i])
		b.ReportMetric(m.rate, c.name+"_req/s")
		b.ReportMetric(float64(m.p50.Microseconds()), c.name+"_p50_µs")
		b.ReportMetric(float64(m.p99.Microseconds()), c.name+"_p99_µs")
		if i > 0 {
			b.ReportMetric(m.rate/off.rate, c.name+"/off")
		}
	}
}

// BenchmarkGetProjectTracingHandler is the same request through the service's handler in
// process, no network, as sub-benchmarks: what tracing costs each request in time and in
// allocations, off, at 10 % and at 100 % (spans batched to a real Jaeger).
func BenchmarkGetProjectTracingHandler(b *testing.B) {
	j := jaegertest.Start(b)
	var (
		token, path string
		first       *servertest.Server
	)
	for _, c := range []struct {
		name    string
		sampler sdktrace.Sampler
	}{
		{"off", nil},
		{"sampled10", sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.1))},
		{"all100", sdktrace.AlwaysSample()},
	} {
		var tr *tracing.Tracing
		if c.sampler != nil {
			exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpointURL(j.OTLPGRPC))
			if err != nil {
				b.Fatal(err)
			}
			tr = tracing.NewWith(sdktrace.WithBatcher(exp), sdktrace.WithSampler(c.sampler),
				sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("saasbase-bench"))))
			b.Cleanup(func() { tr.Shutdown(context.Background()) })
		}
		s := servertest.NewWith(b, servertest.Options{Tracing: tr})
		if first == nil {
			first = s
			a := s.Signup(b, "bench")
			token = a.Token
			path = "/v1/projects/" + s.Create(b, a.Token, "/v1/projects", map[string]string{"name": "bench"})
		}
		h := s.App.Handler()
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest("GET", path, nil)
					req.Header.Set("Authorization", "Bearer "+token)
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Errorf("GET %s: %d %s", path, w.Code, w.Body)
						return
					}
				}
			})
		})
	}
}
