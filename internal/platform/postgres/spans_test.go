package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/platform/tracing"
)

// Under a sampled span, every statement is a child span, a batch's too, named for its
// operation and table and carrying its text but never its arguments; outside one, none.
func TestSpansOfStatements(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr := tracing.NewWith(sdktrace.WithSyncer(exp))
	db, err := postgres.Open(context.Background(), pgtest.RuntimeURL(t), postgres.Options{Spans: tr.Children()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	tenantID := uuid.Must(uuid.NewV7())
	const secret = "s3cret-argument"
	read := func(ctx context.Context) {
		t.Helper()
		var n int
		err := db.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT count(*) FROM projects WHERE name = $1", secret).Scan(&n)
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	read(context.Background())
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("%d spans without a parent, want none", n)
	}

	ctx, parent := tr.Provider().Tracer("t").Start(context.Background(), "request")
	read(ctx)
	parent.End()
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range exp.GetSpans().Snapshots() {
		byName[s.Name()] = s
		if s.Name() != "request" && s.Parent().TraceID() != parent.SpanContext().TraceID() {
			t.Errorf("span %s is not in the request's trace", s.Name())
		}
		for _, kv := range s.Attributes() {
			if strings.Contains(kv.Value.Emit(), secret) {
				t.Errorf("span %s shows an argument: %s=%s", s.Name(), kv.Key, kv.Value.Emit())
			}
		}
	}
	batch, ok := byName["batch"] // BEGIN and the tenant setting, in one round trip
	if !ok {
		t.Fatalf("no batch span among %v", byName)
	}
	if set, ok := byName["SELECT set_config"]; !ok || set.Parent().SpanID() != batch.SpanContext().SpanID() {
		t.Errorf("the tenant setting is not a child of the batch: %v", byName)
	}
	sel, ok := byName["SELECT projects"]
	if !ok || sel.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("no SELECT projects span under the request: %v", byName)
	}
	var text string
	for _, kv := range sel.Attributes() {
		if kv.Key == "db.query.text" {
			text = kv.Value.AsString()
		}
	}
	if text != "SELECT count(*) FROM projects WHERE name = $1" {
		t.Errorf("db.query.text %q", text)
	}
}
