// Package jaegertest runs a real Jaeger (v2, cmd/jaeger of the version tools/jaeger/go.mod
// pins) for tests: OTLP in over gRPC and HTTP, its query API out, in-memory storage, every
// port a free loopback one. The binary is built from tools/jaeger, a module of its own, once
// per test process, into the user's cache directory: the Go build cache makes every build
// after the first a quick check.
package jaegertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saasbase/saasbase/internal/platform/proctest"
)

// Jaeger is a running Jaeger.
type Jaeger struct {
	OTLPHTTP string // OTLP over HTTP: http://127.0.0.1:port
	OTLPGRPC string // OTLP over gRPC: http://127.0.0.1:port
	Query    string // the query API: http://127.0.0.1:port
}

var build struct {
	once sync.Once
	bin  string
	err  error
}

// binary builds Jaeger once per process and answers its path.
func binary() (string, error) {
	build.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..", "..", "..") // the repository
		dir := filepath.Join(root, "tools", "jaeger")
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		build.bin = filepath.Join(cache, "saasbase", "jaeger", "jaeger")
		cmd := exec.Command("go", "build", "-buildvcs=false", "-o", build.bin, "github.com/jaegertracing/jaeger/cmd/jaeger")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			build.err = fmt.Errorf("jaegertest: go build in %s: %v\n%s", dir, err, out.String())
		}
	})
	return build.bin, build.err
}

// Start builds (once) and starts Jaeger, and stops it when the test ends. It waits until the
// query API answers.
func Start(t testing.TB) *Jaeger {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	ports := proctest.FreePorts(t, 4)
	j := &Jaeger{
		OTLPGRPC: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		OTLPHTTP: fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		Query:    fmt.Sprintf("http://127.0.0.1:%d", ports[2]),
	}
	cfg := filepath.Join(t.TempDir(), "jaeger.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, config, ports[0], ports[1], ports[2], ports[3]), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs proctest.Output
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	for deadline := time.Now().Add(60 * time.Second); ; {
		res, err := http.Get(j.Query + "/api/services")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return j
			}
		}
		select {
		case <-exited:
			t.Fatalf("jaeger exited:\n%s", logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger's query API does not answer after 60s:\n%s", logs.String())
		}
	}
}

// config is Jaeger v2's configuration (an OpenTelemetry Collector's): OTLP receivers, a short
// batch, in-memory storage, the query API; no telemetry of its own.
const config = `
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memory_store:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memory_store
    http:
      endpoint: 127.0.0.1:%[3]d
    grpc:
      endpoint: 127.0.0.1:%[4]d
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%[1]d
      http:
        endpoint: 127.0.0.1:%[2]d
processors:
  batch:
    timeout: 50ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memory_store
`

// Trace is a trace as Jaeger's query API answers it.
type Trace struct {
	TraceID string `json:"traceID"`
	Spans   []Span `json:"spans"`
}

// Span is one span of a Trace.
type Span struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"` // CHILD_OF, FOLLOWS_FROM (a link)
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

// Tag answers the value of the span's tag key as text, and whether it has it.
func (s Span) Tag(key string) (string, bool) {
	for _, t := range s.Tags {
		if t.Key == key {
			return fmt.Sprint(t.Value), true
		}
	}
	return "", false
}

// Parent answers the span's parent span id within its trace, "" for a root.
func (s Span) Parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" && r.TraceID == s.TraceID {
			return r.SpanID
		}
	}
	return ""
}

// Trace answers the trace of id as Jaeger has it so far, or nil if it has none of it.
func (j *Jaeger) Trace(ctx context.Context, id string) (*Trace, error) {
	var out struct{ Data []Trace }
	status, err := j.get(ctx, "/api/traces/"+id, &out)
	if err != nil || status == http.StatusNotFound || len(out.Data) == 0 {
		return nil, err
	}
	return &out.Data[0], nil
}

// Find answers the traces of service that have a span named operation (up to 100).
func (j *Jaeger) Find(ctx context.Context, service, operation string) ([]Trace, error) {
	var out struct{ Data []Trace }
	q := "/api/traces?limit=100&lookback=1h&service=" + service + "&operation=" + strings.ReplaceAll(operation, " ", "%20")
	if _, err := j.get(ctx, q, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

func (j *Jaeger) get(ctx context.Context, path string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.Query+path, nil)
	if err != nil {
		return 0, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusNotFound {
		return res.StatusCode, nil
	}
	if res.StatusCode != http.StatusOK {
		return res.StatusCode, fmt.Errorf("jaeger GET %s: %s", path, res.Status)
	}
	return res.StatusCode, json.NewDecoder(res.Body).Decode(v)
}
