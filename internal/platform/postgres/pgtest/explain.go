package pgtest

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// ExplainFunction answers the plan of the body of fn, a LANGUAGE sql function of one
// statement named with its argument types ("app.reap_outbox(timestamptz, int)"), planned as
// the function runs it: a generic plan, the arguments unknown. Sequential scans are turned
// off for the EXPLAIN, so that a test's small table still shows which index can serve the
// query; what the planner picks at scale is then a matter of costs. conn is the owner's.
func ExplainFunction(t testing.TB, conn *pgx.Conn, fn string) string {
	t.Helper()
	ctx := context.Background()
	var body string
	var names, types []string
	err := conn.QueryRow(ctx, `
		SELECT prosrc, coalesce(proargnames, '{}'),
		       ARRAY(SELECT format_type(a, NULL) FROM unnest(proargtypes::oid[]) WITH ORDINALITY AS u (a, n) ORDER BY n)
		  FROM pg_proc WHERE oid = $1::regprocedure`, fn).Scan(&body, &names, &types)
	if err != nil {
		t.Fatalf("explain %s: %v", fn, err)
	}
	// The arguments become the prepared statement's parameters, $1, $2, ... in order.
	nulls := make([]string, len(types))
	for i, name := range names {
		body = regexp.MustCompile(`\b`+regexp.QuoteMeta(name)+`\b`).ReplaceAllLiteralString(body, fmt.Sprintf("$%d", i+1))
		nulls[i] = "NULL"
	}
	params, args := "", ""
	if len(types) > 0 {
		params, args = "("+strings.Join(types, ", ")+")", "("+strings.Join(nulls, ", ")+")"
	}

	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A prepared statement outlives the transaction; this one must not outlive the call.
	defer func() {
		tx.Rollback(ctx)
		conn.Exec(ctx, "DEALLOCATE pgtest_explain")
	}()
	for _, q := range []string{
		"SET LOCAL plan_cache_mode = force_generic_plan",
		"SET LOCAL enable_seqscan = off",
		"PREPARE pgtest_explain" + params + " AS " + body,
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatalf("explain %s: %s: %v", fn, q, err)
		}
	}
	rows, _ := tx.Query(ctx, "EXPLAIN EXECUTE pgtest_explain"+args)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("explain %s: %v", fn, err)
	}
	return strings.Join(lines, "\n")
}
