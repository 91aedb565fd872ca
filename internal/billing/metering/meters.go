package metering

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/cache"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Aggregations of a meter.
const (
	AggSum         = "sum"
	AggCount       = "count"
	AggMax         = "max"
	AggUniqueCount = "unique_count"
	AggLatest      = "latest"
)

// Meter turns usage events of one type into a number per window: what plans charge for and
// quotas limit.
type Meter struct {
	Key           string            `json:"key"`
	EventType     string            `json:"event_type"`
	Aggregation   string            `json:"aggregation"`
	ValueProperty *string           `json:"value_property"`
	GroupBy       map[string]string `json:"group_by"`
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
}

// rolledUp reports whether the meter is answered from rollups (sum, count) rather than from
// raw events (max, unique_count, latest).
func (m Meter) rolledUp() bool { return m.Aggregation == AggSum || m.Aggregation == AggCount }

// rawAggregate is the SQL aggregate of a meter answered from raw events, over the value at
// the path given by the text[] parameter param (such as "$4").
func (m Meter) rawAggregate(param string) string {
	value := "(data #>> " + param + "::text[])"
	switch m.Aggregation {
	case AggMax:
		return "max(" + value + "::numeric)"
	case AggUniqueCount:
		return "count(DISTINCT " + value + ")"
	case AggLatest:
		return "(array_agg(" + value + "::numeric ORDER BY time DESC))[1]"
	}
	panic("metering: no raw aggregate for " + m.Aggregation)
}

// MeterInput is the body of PUT /v1/admin/meters/{key}.
type MeterInput struct {
	Key           string            `json:"key"`
	EventType     string            `json:"event_type"`
	Aggregation   string            `json:"aggregation"`
	ValueProperty *string           `json:"value_property"`
	GroupBy       map[string]string `json:"group_by"`
}

var (
	meterKeyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_]{0,62}$`)
	groupKeyPattern = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	pathPattern     = regexp.MustCompile(`^\$(\.[A-Za-z0-9_-]{1,64}){1,8}$`)
)

// Validate checks every field.
func (in MeterInput) Validate() error {
	var f errs.Fields
	if in.EventType == "" || len(in.EventType) > 256 {
		f.Add("event_type", "is required, at most 256 characters")
	}
	switch in.Aggregation {
	case AggCount:
		if in.ValueProperty != nil {
			f.Add("value_property", "is not allowed with count")
		}
	case AggSum, AggMax, AggUniqueCount, AggLatest:
		if in.ValueProperty == nil || !pathPattern.MatchString(*in.ValueProperty) {
			f.Add("value_property", `must be a path into the event's data such as "$.units"`)
		}
	default:
		f.Add("aggregation", "must be sum, count, max, unique_count or latest")
	}
	if len(in.GroupBy) > 5 {
		f.Add("group_by", "at most 5 groups")
	}
	for name, path := range in.GroupBy {
		if !groupKeyPattern.MatchString(name) || !pathPattern.MatchString(path) {
			f.Add("group_by."+name, `must map a name (a-z, 0-9, _) to a path such as "$.region"`)
		}
	}
	return f.Err()
}

// pathKeys splits "$.a.b" into [a b].
func pathKeys(path string) []string { return strings.Split(strings.TrimPrefix(path, "$."), ".") }

// Meters is the catalog of meters: platform data, read on every ingestion from a snapshot
// that lives at most a second.
type Meters struct {
	db     *postgres.DB
	outbox *events.Outbox
	cached *cache.Cache[struct{}, []Meter] // the whole catalog, under one key
}

// catalogTTL is how long a replica may answer from its snapshot after another changed a meter.
const catalogTTL = time.Second

// NewMeters returns the catalog stored in db; changes emit their events through outbox.
func NewMeters(db *postgres.DB, outbox *events.Outbox, clk clock.Clock) *Meters {
	s := &Meters{db: db, outbox: outbox}
	s.cached = cache.New(clk, catalogTTL, s.load)
	return s
}

const meterColumns = "key, event_type, aggregation, value_property, group_by, created_at, updated_at"

// scanMeter reads meterColumns, then any extra columns into extra.
func scanMeter(row pgx.Row, extra ...any) (Meter, error) {
	var m Meter
	err := row.Scan(append([]any{&m.Key, &m.EventType, &m.Aggregation, &m.ValueProperty, &m.GroupBy, &m.CreatedAt, &m.UpdatedAt}, extra...)...)
	m.CreatedAt, m.UpdatedAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC()
	if m.GroupBy == nil {
		m.GroupBy = map[string]string{}
	}
	return m, err
}

// List answers every meter, by key.
func (s *Meters) List(ctx context.Context) ([]Meter, error) { return s.cached.Get(ctx, struct{}{}) }

func (s *Meters) load(ctx context.Context, _ struct{}) ([]Meter, error) {
	rows, _ := s.db.Platform(ctx).Query(ctx, "SELECT "+meterColumns+" FROM meters ORDER BY key")
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Meter, error) { return scanMeter(r) })
	if err != nil {
		return nil, fmt.Errorf("meters.list: %w", err)
	}
	return ms, nil
}

// Get answers one meter.
func (s *Meters) Get(ctx context.Context, key string) (Meter, error) {
	ms, err := s.List(ctx)
	if err != nil {
		return Meter{}, err
	}
	for _, m := range ms {
		if m.Key == key {
			return m, nil
		}
	}
	return Meter{}, errs.NotFoundf("no meter %q", key)
}

// Exists reports whether a meter is defined.
func (s *Meters) Exists(ctx context.Context, key string) (bool, error) {
	_, err := s.Get(ctx, key)
	if errs.Is(err, errs.NotFound) {
		return false, nil
	}
	return err == nil, err
}

// Put creates or replaces a meter and emits the platform event meter.changed.
func (s *Meters) Put(ctx context.Context, key string, in MeterInput) (m Meter, created bool, err error) {
	if !meterKeyPattern.MatchString(key) {
		return Meter{}, false, errs.Field("key", "must be lowercase letters, digits or _, at most 63")
	}
	if in.Key != "" && in.Key != key {
		return Meter{}, false, errs.Field("key", "must match the key in the path")
	}
	if key == "api_requests" {
		return Meter{}, false, errs.Field("key", "api_requests is built in and cannot be changed")
	}
	groups, _ := json.Marshal(in.GroupBy)
	err = s.db.InTenantTx(ctx, postgres.PlatformTenant, func(tx pgx.Tx) error {
		var err error
		m, err = scanMeter(tx.QueryRow(ctx, `
			INSERT INTO meters AS m (key, event_type, aggregation, value_property, group_by)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (key) DO UPDATE
			   SET group_by = excluded.group_by, updated_at = now()
			 WHERE m.event_type = excluded.event_type AND m.aggregation = excluded.aggregation
			   AND m.value_property IS NOT DISTINCT FROM excluded.value_property
			RETURNING `+meterColumns+`, (xmax = 0)`, key, in.EventType, in.Aggregation, in.ValueProperty, groups), &created)
		if postgres.IsNoRows(err) {
			// Its stored usage was measured under the old meaning: a new meaning is a new meter.
			return errs.E(errs.Conflict, "conflict", "meter %q exists: its event_type, aggregation and value_property cannot change; define a new meter", key)
		}
		if err != nil {
			return err
		}
		return s.outbox.Append(ctx, tx, postgres.PlatformTenant, "meter.changed", m)
	})
	s.cached.Invalidate(struct{}{})
	if err != nil {
		return Meter{}, false, fmt.Errorf("meters.put %q: %w", key, err)
	}
	return m, created, nil
}
