package flags

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Appender writes an event inside the caller's transaction: *events.Outbox.
type Appender interface {
	Append(ctx context.Context, tx pgx.Tx, tenantID uuid.UUID, typ string, data any) error
}

// Propagator makes a committed change visible: the Refresher applies it to this replica's
// snapshot at once and tells the others.
type Propagator interface {
	Propagate(ctx context.Context, c Change)
}

// Admin makes the operators' changes. Each runs in one transaction that takes the change
// lock, changes the rows, raises the configuration version and writes the change's audit row
// and flag.changed event (a platform event); a change that changes nothing writes none of
// them. Once committed, the new version is propagated.
type Admin struct {
	DB         *postgres.DB
	Events     Appender
	Clock      clock.Clock
	Propagator Propagator // nil: replicas learn of changes from their poll alone
}

// ChangedEvent is the data of the flag.changed event.
type ChangedEvent struct {
	Key      string     `json:"key"`
	Action   string     `json:"action"` // as the audit row's
	Version  int64      `json:"version"`
	TenantID *uuid.UUID `json:"tenant_id,omitempty"` // the tenant of an override
}

// flagState is a flag as its audit rows record it: what the operator wrote, and for a
// deletion the overrides that went with it.
type flagState struct {
	Key string `json:"key"`
	Definition
	Overrides []Override `json:"overrides,omitempty"`
}

// change is what a change did, for its audit row and its event.
type change struct {
	action        string
	key           string
	tenantID      *uuid.UUID
	before, after any    // nil: none
	delta         Change // for the snapshots; apply sets its version
}

// apply runs fn as one change. fn gets the version the change will have and the time, and
// answers what it changed, or nil if nothing.
func (a *Admin) apply(ctx context.Context, actor string, fn func(tx pgx.Tx, version int64, now time.Time) (*change, error)) error {
	var committed Change
	err := a.DB.InTenantTx(ctx, postgres.PlatformTenant, func(tx pgx.Tx) error {
		current, err := lockVersion(ctx, tx)
		if err != nil {
			return err
		}
		next, now := current+1, a.Clock.Now()
		c, err := fn(tx, next, now)
		if err != nil || c == nil {
			return err
		}
		before, err := marshalState(c.before)
		if err != nil {
			return err
		}
		after, err := marshalState(c.after)
		if err != nil {
			return err
		}
		if err := setVersion(ctx, tx, next); err != nil {
			return err
		}
		row := auditRow{key: c.key, action: c.action, actor: actor, version: next, before: before, after: after, at: now}
		if err := insertAudit(ctx, tx, row); err != nil {
			return err
		}
		ev := ChangedEvent{Key: c.key, Action: c.action, Version: next, TenantID: c.tenantID}
		if err := a.Events.Append(ctx, tx, postgres.PlatformTenant, "flag.changed", ev); err != nil {
			return err
		}
		committed = c.delta
		committed.Version = next
		return nil
	})
	if err == nil && committed.Version > 0 && a.Propagator != nil {
		a.Propagator.Propagate(ctx, committed)
	}
	return err
}

func marshalState(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}

// PutFlag creates or replaces a flag, and says whether it created it. An invalid definition
// is a validation error naming each bad field: unknown variants, weights that do not sum to
// 100, values of the wrong type.
func (a *Admin) PutFlag(ctx context.Context, actor, key string, in FlagInput) (f Flag, created bool, err error) {
	if in.Key != "" && in.Key != key {
		return Flag{}, false, errs.Field("key", "must match the key in the path")
	}
	def := in.definition()
	check := def
	if check.Salt == "" {
		check.Salt = key // stands in for the default or the current salt, which are valid
	}
	_, fe := compileFlag(key, check)
	if in.Enabled == nil {
		fe = append(fe, errs.FieldError{Field: "enabled", Message: "is required"})
	}
	if err := fe.Err(); err != nil {
		return Flag{}, false, err
	}

	err = a.apply(ctx, actor, func(tx pgx.Tx, version int64, now time.Time) (*change, error) {
		old, found, err := flagInTx(ctx, tx, key)
		if err != nil {
			return nil, err
		}
		if def.Salt == "" {
			def.Salt = key
			if found {
				def.Salt = old.Salt
			}
		}
		if found && sameDefinition(old.Definition, def) {
			f = old
			return nil, nil
		}
		if found {
			if err := checkOverridesKept(ctx, tx, key, def); err != nil {
				return nil, err
			}
		}
		f = Flag{Key: key, Definition: def, Version: version, CreatedAt: now, UpdatedAt: now}
		c := &change{action: "flag.created", key: key, after: flagState{Key: key, Definition: def}}
		if found {
			f.CreatedAt = old.CreatedAt
			c.action, c.before = "flag.updated", flagState{Key: key, Definition: old.Definition}
		}
		created = !found
		c.delta = Change{Flag: &f}
		return c, upsertFlag(ctx, tx, f)
	})
	if err != nil {
		return Flag{}, false, fmt.Errorf("flags.put %q: %w", key, err)
	}
	return f, created, nil
}

// checkOverridesKept refuses a definition that drops a variant some override serves: the
// override would silently stop applying. PostgreSQL counts them, so a flag with many
// overrides sends back only the dropped variants.
func checkOverridesKept(ctx context.Context, tx pgx.Tx, key string, def Definition) error {
	kept := slices.Collect(maps.Keys(def.Variants))
	rows, _ := tx.Query(ctx, `
		SELECT variant, count(*) FROM app.flag_overrides($1) WHERE variant <> ALL ($2::text[])
		 GROUP BY variant ORDER BY variant`, key, kept)
	var fe errs.Fields
	var (
		name string
		n    int
	)
	_, err := pgx.ForEachRow(rows, []any{&name, &n}, func() error {
		fe.Add("variants", fmt.Sprintf("variant %q is served to %d tenant(s) by overrides; delete those overrides first", name, n))
		return nil
	})
	if err != nil {
		return err
	}
	return fe.Err()
}

// DeleteFlag deletes a flag and every tenant's override of it.
func (a *Admin) DeleteFlag(ctx context.Context, actor, key string) error {
	err := a.apply(ctx, actor, func(tx pgx.Tx, _ int64, _ time.Time) (*change, error) {
		old, found, err := flagInTx(ctx, tx, key)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, errNoFlag(key)
		}
		removed, err := deleteOverrides(ctx, tx, key, nil)
		if err != nil {
			return nil, err
		}
		if err := deleteFlag(ctx, tx, key); err != nil {
			return nil, err
		}
		return &change{action: "flag.deleted", key: key,
			before: flagState{Key: key, Definition: old.Definition, Overrides: removed},
			delta:  Change{DeletedFlag: key}}, nil
	})
	if err != nil {
		return fmt.Errorf("flags.delete %q: %w", key, err)
	}
	return nil
}

// SetOverride serves a tenant a variant of a flag, and says whether the override is new.
func (a *Admin) SetOverride(ctx context.Context, actor, key string, tenantID uuid.UUID, in OverrideInput) (o Override, created bool, err error) {
	if in.Variant == "" {
		return Override{}, false, errs.Field("variant", "is required")
	}
	o = Override{FlagKey: key, TenantID: tenantID, Variant: in.Variant}
	err = a.apply(ctx, actor, func(tx pgx.Tx, _ int64, now time.Time) (*change, error) {
		f, found, err := flagInTx(ctx, tx, key)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, errNoFlag(key)
		}
		if _, ok := f.Variants[in.Variant]; !ok {
			return nil, errs.Field("variant", fmt.Sprintf("unknown variant %q", in.Variant))
		}
		previous, err := setOverride(ctx, tx, o, now)
		if err != nil || previous == in.Variant {
			return nil, err
		}
		c := &change{action: "override.set", key: key, tenantID: &tenantID, after: o, delta: Change{Override: &o}}
		if previous != "" {
			c.before = Override{FlagKey: key, TenantID: tenantID, Variant: previous}
		}
		created = previous == ""
		return c, nil
	})
	if err != nil {
		return Override{}, false, fmt.Errorf("flags.set_override %q tenant %s: %w", key, tenantID, err)
	}
	return o, created, nil
}

// DeleteOverride removes a tenant's override of a flag.
func (a *Admin) DeleteOverride(ctx context.Context, actor, key string, tenantID uuid.UUID) error {
	err := a.apply(ctx, actor, func(tx pgx.Tx, _ int64, _ time.Time) (*change, error) {
		if _, found, err := flagInTx(ctx, tx, key); err != nil || !found {
			if err == nil {
				err = errNoFlag(key)
			}
			return nil, err
		}
		removed, err := deleteOverrides(ctx, tx, key, &tenantID)
		if err != nil {
			return nil, err
		}
		if len(removed) == 0 {
			return nil, errs.NotFoundf("tenant %s has no override of flag %q", tenantID, key)
		}
		return &change{action: "override.deleted", key: key, tenantID: &tenantID, before: removed[0],
			delta: Change{DeletedOverride: &removed[0]}}, nil
	})
	if err != nil {
		return fmt.Errorf("flags.delete_override %q tenant %s: %w", key, tenantID, err)
	}
	return nil
}

// canonical answers d's JSON in one spelling (object keys sorted, numbers as Go prints
// float64), so that two definitions compare equal when they mean the same: jsonb reorders
// keys and drops insignificant spaces, a client's JSON may not.
func canonical(d Definition) ([]byte, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// sameDefinition reports whether a and b mean the same flag.
func sameDefinition(a, b Definition) bool {
	ca, err1 := canonical(a)
	cb, err2 := canonical(b)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}
