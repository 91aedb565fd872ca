package flags

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
)

// fieldError fails unless err is a validation error naming field.
func fieldError(t *testing.T, err error, field string) {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.Invalid {
		t.Fatalf("error %v, want a validation error on %s", err, field)
	}
	for _, f := range e.Fields {
		if f.Field == field {
			return
		}
	}
	t.Fatalf("fields %+v, want one on %s", e.Fields, field)
}

func TestPutFlagRefusesInvalidDefinitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newReplica(t, replicaOptions{})
	key := uniqueKey("invalid")

	in := flagInput(30, true)
	in.DefaultVariant = "maybe"
	_, _, err := r.admin.PutFlag(ctx, "test", key, in)
	fieldError(t, err, "default_variant")

	in = flagInput(30, true)
	in.Rules = []Rule{{Split: []Share{{"on", 30}, {"off", 60}}}}
	_, _, err = r.admin.PutFlag(ctx, "test", key, in)
	fieldError(t, err, "rules[0].split")

	in = flagInput(30, true)
	in.Variants["on"] = raw(`"true"`)
	_, _, err = r.admin.PutFlag(ctx, "test", key, in)
	fieldError(t, err, "variants.on")

	in = flagInput(30, true)
	in.Rules = []Rule{{Variant: "maybe"}}
	_, _, err = r.admin.PutFlag(ctx, "test", key, in)
	fieldError(t, err, "rules[0].variant")

	in = flagInput(30, true)
	in.Enabled = nil
	_, _, err = r.admin.PutFlag(ctx, "test", key, in)
	fieldError(t, err, "enabled")

	in = flagInput(30, true)
	in.Key = "another"
	_, _, err = r.admin.PutFlag(ctx, "test", key, in)
	fieldError(t, err, "key")

	_, _, err = r.admin.PutFlag(ctx, "test", "not a key", flagInput(30, true))
	fieldError(t, err, "key")

	if _, err := r.store.Get(ctx, key); !errs.Is(err, errs.NotFound) {
		t.Errorf("an invalid flag was stored: %v", err)
	}
}

func TestPutFlagCreatesReplacesAndKeepsTheSalt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newReplica(t, replicaOptions{})
	key := uniqueKey("salt")

	f, created, err := r.admin.PutFlag(ctx, "test", key, flagInput(30, true))
	if err != nil || !created {
		t.Fatalf("create: %v, created %v", err, created)
	}
	if f.Salt != key || f.Version < 1 {
		t.Errorf("a new flag's salt is %q (want its key), version %d", f.Salt, f.Version)
	}
	in := flagInput(30, true)
	in.Salt = "reshuffled"
	if f, _, err = r.admin.PutFlag(ctx, "test", key, in); err != nil || f.Salt != "reshuffled" {
		t.Fatalf("set salt: %v, %q", err, f.Salt)
	}
	f, created, err = r.admin.PutFlag(ctx, "test", key, flagInput(50, true))
	if err != nil || created || f.Salt != "reshuffled" {
		t.Errorf("replace: %v, created %v, salt %q (want kept)", err, created, f.Salt)
	}
	stored, err := r.store.Get(ctx, key)
	if err != nil || !sameDefinition(stored.Definition, f.Definition) || stored.Version != f.Version {
		t.Errorf("stored %+v, answered %+v", stored, f)
	}
	// The refresher of the replica that made the change serves it at once.
	if got := r.client.Current().Evaluate(key, TypeAny, Target{Key: "x"}); got.Reason != ReasonSplit {
		t.Errorf("the writing replica does not serve its change: %+v", got)
	}
}

// Test 7: every change that changed something has one audit row and one flag.changed event;
// refused, unchanged and rolled-back changes have neither.
func TestAuditRowsEqualChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newReplica(t, replicaOptions{})
	key := uniqueKey("audited")
	tenant := newTenant(t, "free")
	changes := 0
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		changes++
	}
	unchanged := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	refused := func(err error, kind errs.Kind) {
		t.Helper()
		if !errs.Is(err, kind) {
			t.Fatalf("error %v, want kind %s", err, kind)
		}
	}

	_, _, err := r.admin.PutFlag(ctx, "op:1", key, flagInput(30, true))
	must(err)
	_, _, err = r.admin.PutFlag(ctx, "op:1", key, flagInput(30, true))
	unchanged(err)
	_, _, err = r.admin.PutFlag(ctx, "op:1", key, flagInput(30, false))
	must(err)
	bad := flagInput(30, true)
	bad.Rules = []Rule{{Split: []Share{{"on", 30}}}}
	_, _, err = r.admin.PutFlag(ctx, "op:1", key, bad)
	refused(err, errs.Invalid)
	_, _, err = r.admin.SetOverride(ctx, "op:2", key, tenant, OverrideInput{Variant: "on"})
	must(err)
	_, _, err = r.admin.SetOverride(ctx, "op:2", key, tenant, OverrideInput{Variant: "on"})
	unchanged(err)
	_, _, err = r.admin.SetOverride(ctx, "op:2", key, tenant, OverrideInput{Variant: "off"})
	must(err)
	_, _, err = r.admin.SetOverride(ctx, "op:2", key, uuid.New(), OverrideInput{Variant: "on"})
	refused(err, errs.NotFound)
	_, _, err = r.admin.SetOverride(ctx, "op:2", key, tenant, OverrideInput{Variant: "maybe"})
	refused(err, errs.Invalid)
	must(r.admin.DeleteOverride(ctx, "op:2", key, tenant))
	refused(r.admin.DeleteOverride(ctx, "op:2", key, tenant), errs.NotFound)

	// A change whose transaction fails after its audit row was written leaves nothing.
	version := r.client.Current().Version()
	failing := *r.admin
	failing.Events = appenderFunc(func(context.Context, pgx.Tx, uuid.UUID, string, any) error {
		return errors.New("outbox unavailable")
	})
	if _, _, err := failing.PutFlag(ctx, "op:3", key, flagInput(90, true)); err == nil {
		t.Fatal("the failing change succeeded")
	}
	if stored, _ := r.store.Get(ctx, key); stored.Enabled {
		t.Error("the rolled-back change was stored")
	}
	if v, _ := r.store.Version(ctx); v < version {
		t.Errorf("version went back to %d", v)
	}

	must(r.admin.DeleteFlag(ctx, "op:1", key))
	refused(r.admin.DeleteFlag(ctx, "op:1", key), errs.NotFound)

	entries, err := r.store.Audit(ctx, key, httpx.Page{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != changes {
		t.Fatalf("%d audit rows for %d changes", len(entries), changes)
	}
	var events int
	err = pgtest.Owner(t).QueryRow(ctx,
		"SELECT count(*) FROM outbox WHERE tenant_id = $1 AND type = 'flag.changed' AND data->>'key' = $2",
		uuid.Nil, key).Scan(&events)
	if err != nil || events != changes {
		t.Fatalf("%d flag.changed events (%v) for %d changes", events, err, changes)
	}

	wantActions := []string{"flag.deleted", "override.deleted", "override.set", "override.set", "flag.updated", "flag.created"}
	for i, e := range entries {
		if e.Action != wantActions[i] {
			t.Errorf("entry %d is %s, want %s", i, e.Action, wantActions[i])
		}
		if i > 0 && e.Version >= entries[i-1].Version {
			t.Errorf("versions do not increase: %d then %d", e.Version, entries[i-1].Version)
		}
	}
	created, updated, set := entries[5], entries[4], entries[2]
	if created.Before != nil || member(t, created.After, "enabled") != true || created.Actor != "op:1" {
		t.Errorf("creation: %s → %s by %s", created.Before, created.After, created.Actor)
	}
	if member(t, updated.Before, "enabled") != true || member(t, updated.After, "enabled") != false {
		t.Errorf("update: %s → %s", updated.Before, updated.After)
	}
	if member(t, set.Before, "variant") != "on" || member(t, set.After, "variant") != "off" ||
		member(t, set.After, "tenant_id") != tenant.String() {
		t.Errorf("override change: %s → %s", set.Before, set.After)
	}
	if deleted := entries[0]; deleted.After != nil || deleted.Before == nil {
		t.Errorf("deletion: %s → %s", deleted.Before, deleted.After)
	}
}

// member answers one member of a JSON object.
func member(t *testing.T, object json.RawMessage, name string) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(object, &m); err != nil {
		t.Fatalf("%s: %v", object, err)
	}
	return m[name]
}

type appenderFunc func(ctx context.Context, tx pgx.Tx, tenantID uuid.UUID, typ string, data any) error

func (f appenderFunc) Append(ctx context.Context, tx pgx.Tx, tenantID uuid.UUID, typ string, data any) error {
	return f(ctx, tx, tenantID, typ, data)
}

func TestDeletingAFlagDeletesItsOverrides(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newReplica(t, replicaOptions{})
	key := uniqueKey("deleted")
	a, b := newTenant(t, "free"), newTenant(t, "pro")
	if _, _, err := r.admin.PutFlag(ctx, "test", key, flagInput(0, true)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uuid.UUID{a, b} {
		if _, created, err := r.admin.SetOverride(ctx, "test", key, id, OverrideInput{Variant: "on"}); err != nil || !created {
			t.Fatalf("override: %v, created %v", err, created)
		}
	}
	if list, err := r.store.Overrides(ctx, key, httpx.Page{Limit: 10}); err != nil || len(list) != 2 {
		t.Fatalf("overrides %v, %v; want 2", list, err)
	}
	if err := r.admin.DeleteFlag(ctx, "test", key); err != nil {
		t.Fatal(err)
	}
	// Re-created under the same key, the flag starts without the old overrides.
	if _, _, err := r.admin.PutFlag(ctx, "test", key, flagInput(0, true)); err != nil {
		t.Fatal(err)
	}
	if list, err := r.store.Overrides(ctx, key, httpx.Page{Limit: 10}); err != nil || len(list) != 0 {
		t.Errorf("overrides survived their flag: %v, %v", list, err)
	}
	if got := r.client.Current().Evaluate(key, TypeAny, tenantTarget(a)); got.Variant != "off" {
		t.Errorf("tenant a still served its old override: %+v", got)
	}
	entries, _ := r.store.Audit(ctx, key, httpx.Page{Limit: 10})
	if len(entries) < 2 || entries[1].Action != "flag.deleted" || !strings.Contains(string(entries[1].Before), a.String()) {
		t.Errorf("the deletion's audit row does not record the overrides it removed: %+v", entries)
	}
}

func TestAFlagCannotDropAVariantThatOverridesServe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newReplica(t, replicaOptions{})
	key := uniqueKey("kept")
	tenant := newTenant(t, "free")
	if _, _, err := r.admin.PutFlag(ctx, "test", key, flagInput(10, true)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.admin.SetOverride(ctx, "test", key, tenant, OverrideInput{Variant: "on"}); err != nil {
		t.Fatal(err)
	}
	in := flagInput(10, true)
	in.Variants = map[string]json.RawMessage{"off": raw("false"), "yes": raw("true")}
	in.Rules = []Rule{{Conditions: []Condition{}, Split: []Share{{"yes", 10}, {"off", 90}}}}
	_, _, err := r.admin.PutFlag(ctx, "test", key, in)
	fieldError(t, err, "variants")
}

// The runtime role reaches overrides only through the named functions, which answer only the
// rows of the flag asked for.
func TestOverridesAreReachedOnlyThroughTheirFunctions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newReplica(t, replicaOptions{})
	key, other := uniqueKey("fn"), uniqueKey("fn-other")
	a, b := newTenant(t, "free"), newTenant(t, "free")
	for _, k := range []string{key, other} {
		if _, _, err := r.admin.PutFlag(ctx, "test", k, flagInput(0, true)); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []Override{{key, a, "on"}, {key, b, "off"}, {other, a, "on"}} {
		if _, _, err := r.admin.SetOverride(ctx, "test", o.FlagKey, o.TenantID, OverrideInput{Variant: o.Variant}); err != nil {
			t.Fatal(err)
		}
	}

	// Outside a tenant transaction, the tenancy policy already refuses (loudly).
	if _, err := r.store.DB.Pool.Exec(ctx, "SELECT * FROM flag_overrides"); err == nil {
		t.Error("the runtime role read flag_overrides outside a tenant transaction")
	}
	// Inside one, the runtime role has no privilege on the table at all.
	err := r.store.DB.InTenantTx(ctx, a, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT * FROM flag_overrides")
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("a tenant transaction read flag_overrides: %v", err)
	}

	list, err := r.store.Overrides(ctx, key, httpx.Page{Limit: 10})
	if err != nil || len(list) != 2 {
		t.Fatalf("overrides of %s: %v, %v", key, list, err)
	}
	for _, o := range list {
		if o.FlagKey != key {
			t.Errorf("the list of %s holds an override of %s", key, o.FlagKey)
		}
	}
	// Write functions, called directly, still check the flag and the variant.
	_, err = r.store.DB.Pool.Exec(ctx, "SELECT app.set_flag_override($1, $2, 'maybe', now())", key, a)
	if err == nil {
		t.Error("set_flag_override accepted an unknown variant")
	}
}

// The migration's example flag compiles and gates by plan once an operator enables it.
func TestTheSeededFlag(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newReplica(t, replicaOptions{})
	f, err := r.store.Get(ctx, "project-limit")
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{Tenant: func(ctx context.Context) (Tenant, bool) {
		return Tenant{ID: tenantA, Plan: ctx.Value(planKey{}).(string)}, true
	}}
	free := context.WithValue(ctx, planKey{}, "free")
	pro := context.WithValue(ctx, planKey{}, "pro")

	c.set(r.client.Current())
	if f.Enabled || c.Number(free, "project-limit", -1) != 0 {
		t.Errorf("the seeded flag is on (%v) or limits free tenants before an operator enables it", f.Enabled)
	}
	f.Enabled = true
	c.set(mustSnapshot(t, 1, []Flag{f}))
	if got := c.Number(free, "project-limit", -1); got != 3 {
		t.Errorf("enabled, a free tenant's limit is %v, want 3", got)
	}
	if got := c.Number(pro, "project-limit", -1); got != 0 {
		t.Errorf("enabled, a pro tenant's limit is %v, want 0 (none)", got)
	}
}

type planKey struct{}
