package flags

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
)

// Writes reach every replica's snapshot as changes applied to it, not as reloads of every
// flag and override: after flag creations, an update that reorders the variants, 150 override
// sets (past the point where the overrides are folded together) and deletions, made on one
// replica, both replicas serve exactly what a snapshot loaded afresh serves, for every flag
// and tenant, and neither loaded the configuration again. (Not parallel: another test's
// change would put a version between two of these and force a reload, rightly.)
func TestWritesApplyToTheSnapshot(t *testing.T) {
	ctx := context.Background()
	channel := Channel("test:" + randomHex(6) + ":")
	var loads [2]*countingSource
	replicas := make([]*replica, 2)
	for i := range replicas {
		replicas[i] = newReplica(t, replicaOptions{channel: channel, source: func(s Source) Source {
			loads[i] = &countingSource{Source: s}
			return loads[i]
		}})
	}
	a := replicas[0]
	time.Sleep(200 * time.Millisecond) // both subscribed (a subscription checks the version)
	start := [2]int64{loads[0].calls.Load(), loads[1].calls.Load()}

	keys := []string{uniqueKey("apply-a"), uniqueKey("apply-b"), uniqueKey("apply-c")}
	for _, k := range keys {
		if _, _, err := a.admin.PutFlag(ctx, "test", k, flagInput(50, true)); err != nil {
			t.Fatal(err)
		}
	}
	rows, _ := pgtest.Owner(t).Query(ctx, `
		INSERT INTO tenants (id, name, slug, plan_code)
		SELECT gen_random_uuid(), 'apply', 'flags-apply-' || gen_random_uuid(), 'free' FROM generate_series(1, 150)
		RETURNING id`)
	tenants, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		t.Fatal(err)
	}
	for i := range tenants {
		variant := []string{"on", "off"}[i%2]
		if _, _, err := a.admin.SetOverride(ctx, "test", keys[0], tenants[i], OverrideInput{Variant: variant}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := a.admin.SetOverride(ctx, "test", keys[1], tenants[0], OverrideInput{Variant: "on"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range tenants[:10] {
		if err := a.admin.DeleteOverride(ctx, "test", keys[0], id); err != nil {
			t.Fatal(err)
		}
	}
	// A third variant sorts between the two: every override's index moves.
	in := flagInput(50, true)
	in.Variants["maybe"] = json.RawMessage(`true`)
	in.DefaultVariant = "maybe"
	if _, _, err := a.admin.PutFlag(ctx, "test", keys[0], in); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.admin.SetOverride(ctx, "test", keys[0], tenants[20], OverrideInput{Variant: "maybe"}); err != nil {
		t.Fatal(err)
	}
	if err := a.admin.DeleteFlag(ctx, "test", keys[2]); err != nil {
		t.Fatal(err)
	}

	var fresh *Snapshot
	fresh, err = a.store.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range replicas {
		eventually(t, 10*time.Second, fmt.Sprintf("replica %d at version %d", i, fresh.Version()), func() bool {
			return r.client.Current().Version() == fresh.Version()
		})
		s := r.client.Current()
		if s.Len() != fresh.Len() {
			t.Errorf("replica %d holds %d flags, a fresh load %d", i, s.Len(), fresh.Len())
		}
		for _, id := range append(tenants, uuid.New()) {
			target := Target{Tenant: Tenant{ID: id, Plan: "free"}}
			for _, k := range keys {
				if got, want := s.Evaluate(k, TypeAny, target), fresh.Evaluate(k, TypeAny, target); got != want {
					t.Fatalf("replica %d, flag %s, tenant %s: %+v, a fresh load %+v", i, k, id, got, want)
				}
			}
		}
		if n := loads[i].calls.Load() - start[i]; n != 0 {
			t.Errorf("replica %d went to the store %d times for %d changes, want none", i, n, 3+150+1+10+2+1)
		}
	}
	if got := fresh.Evaluate(keys[0], TypeAny, Target{Tenant: Tenant{ID: tenants[20]}}); got.Variant != "maybe" {
		t.Errorf("the last override serves %q, want maybe", got.Variant)
	}
}
