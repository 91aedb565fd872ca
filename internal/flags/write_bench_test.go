package flags

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
)

// BenchmarkFlagWrites measures an operator's writes as a replica makes them, propagation to
// its own snapshot included (pub/sub on the machine's Redis): an override PUT when the flag
// has no overrides and when it has 10k, and an import of 2,000 overrides one PUT after the
// other (reported per override and in total). The tenants and the 10k overrides are seeded
// in single statements.
func BenchmarkFlagWrites(b *testing.B) {
	ctx := context.Background()
	rep := newReplica(b, replicaOptions{channel: "test:" + randomHex(6) + ":flags:changed"})
	key := uniqueKey("writes")
	if _, _, err := rep.admin.PutFlag(ctx, "bench", key, flagInput(10, true)); err != nil {
		b.Fatal(err)
	}
	owner := pgtest.Owner(b)
	seedTenants := func(n int) []uuid.UUID {
		b.Helper()
		rows, err := owner.Query(ctx, `
			INSERT INTO tenants (id, name, slug, plan_code)
			SELECT gen_random_uuid(), 'bench', 'flags-bench-' || gen_random_uuid(), 'free' FROM generate_series(1, $1)
			RETURNING id`, n)
		if err != nil {
			b.Fatal(err)
		}
		var ids []uuid.UUID
		for rows.Next() {
			var id uuid.UUID
			rows.Scan(&id)
			ids = append(ids, id)
		}
		if rows.Err() != nil {
			b.Fatal(rows.Err())
		}
		return ids
	}
	put := func(b *testing.B, tenant uuid.UUID, variant string) {
		if _, _, err := rep.admin.SetOverride(ctx, "bench", key, tenant, OverrideInput{Variant: variant}); err != nil {
			b.Fatal(err)
		}
	}
	// toggle PUTs one tenant's override, on then off, so that every PUT is a change.
	toggle := func(b *testing.B) {
		tenant := seedTenants(1)[0]
		variants := [2]string{"on", "off"}
		i := 0
		for b.Loop() {
			put(b, tenant, variants[i&1])
			i++
		}
		if got := rep.client.Current().Evaluate(key, TypeBoolean, Target{Tenant: Tenant{ID: tenant}}); got.Variant != variants[(i-1)&1] {
			b.Fatalf("after the last PUT the snapshot serves %q", got.Variant)
		}
	}

	b.Run("put-override/overrides=0", toggle)
	b.Run("import-2000-overrides", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			ids := seedTenants(2000)
			b.StartTimer()
			start := time.Now()
			for _, id := range ids {
				put(b, id, "on")
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(len(ids)), "ms/override")
		}
	})
	if _, err := owner.Exec(ctx, `
		INSERT INTO flag_overrides (tenant_id, flag_key, variant, created_at, updated_at)
		SELECT id, $1, 'on', now(), now() FROM tenants WHERE slug LIKE 'flags-bench-%'
		ON CONFLICT DO NOTHING`, key); err != nil {
		b.Fatal(err)
	}
	if n := 10_000 - countOverrides(b, key); n > 0 {
		ids := seedTenants(n)
		if _, err := owner.Exec(ctx, `
			INSERT INTO flag_overrides (tenant_id, flag_key, variant, created_at, updated_at)
			SELECT id, $1, 'on', now(), now() FROM unnest($2::uuid[]) id`, key, ids); err != nil {
			b.Fatal(err)
		}
	}
	if err := rep.refresher.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("put-override/overrides=10000", toggle)
}

func countOverrides(b *testing.B, key string) int {
	var n int
	if err := pgtest.Owner(b).QueryRow(context.Background(), "SELECT count(*) FROM flag_overrides WHERE flag_key = $1", key).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}
