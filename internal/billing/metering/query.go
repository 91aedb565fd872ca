package metering

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/saasbase/saasbase/internal/platform/errs"
)

// UsageQuery asks for a meter's value over [From, To), per Window (hour, day, month, or ""
// for one value over the whole range) in time zone Loc, optionally per group.
type UsageQuery struct {
	Meter   string
	From    time.Time
	To      time.Time
	Window  string
	Loc     *time.Location
	GroupBy string
}

// UsageRow is one window's value.
type UsageRow struct {
	WindowStart time.Time       `json:"window_start"`
	WindowEnd   time.Time       `json:"window_end"`
	Value       json.Number     `json:"value"`
	Group       json.RawMessage `json:"group"`
}

// UsageReport answers GET /v1/meters/{key}/usage.
type UsageReport struct {
	Meter  string     `json:"meter"`
	From   time.Time  `json:"from"`
	To     time.Time  `json:"to"`
	Window *string    `json:"window"`
	Data   []UsageRow `json:"data"`
}

// windowSQL names date_trunc's field of a window.
var windowSQL = map[string]string{"hour": "hour", "day": "day", "month": "month"}

// maxWindows bounds a report's size.
const maxWindows = 2000

// Validate checks the query against the meter.
func (q UsageQuery) Validate(m Meter) error {
	var f errs.Fields
	if !q.From.Before(q.To) {
		f.Add("to", "must be after from")
	}
	if q.Window != "" {
		if _, ok := windowSQL[q.Window]; !ok {
			f.Add("window", "must be hour, day or month")
		} else if q.Window == "hour" && q.To.Sub(q.From) > maxWindows*time.Hour {
			f.Add("window", "too many hours in the range: narrow it or use day")
		}
	}
	if q.GroupBy != "" {
		if _, ok := m.GroupBy[q.GroupBy]; !ok {
			f.Add("group_by", "is not a group of meter "+m.Key)
		}
	}
	return f.Err()
}

// Query answers a meter's usage for a tenant, exactly for any [From, To). Sums and counts
// come from the 15-minute rollups for the whole buckets inside the range and from the raw
// events for its two ragged edges, in one statement; max, unique_count and latest from the
// raw events. Raw events are kept for DedupeWindow and until their period is invoiced: a
// range that needs older ones is refused (rollups answer only on bucket boundaries).
func (s *Usage) Query(ctx context.Context, tenantID uuid.UUID, q UsageQuery) (UsageReport, error) {
	m, err := s.Meters.Get(ctx, q.Meter)
	if err != nil {
		return UsageReport{}, err
	}
	// PostgreSQL keeps microseconds; so do the bounds, so the edges and the rows agree.
	q.From, q.To = q.From.Truncate(time.Microsecond), q.To.Truncate(time.Microsecond)
	if err := q.Validate(m); err != nil {
		return UsageReport{}, err
	}
	rep := UsageReport{Meter: m.Key, From: q.From.UTC(), To: q.To.UTC(), Data: []UsageRow{}}
	if q.Window != "" {
		rep.Window = &q.Window
	}
	// The whole buckets inside the range, [inner, outer); none if the range is inside one.
	inner, outer := q.From.Truncate(RollupGranule), q.To.Truncate(RollupGranule)
	if inner.Before(q.From) {
		inner = inner.Add(RollupGranule)
	}
	if !inner.Before(outer) {
		inner, outer = q.To, q.To
	}
	// The earliest raw event the answer needs, and which parameter asks for it.
	rawFrom, rawParam, needRaw := q.From, "from", true
	if m.rolledUp() {
		switch {
		case q.From.Before(inner):
		case outer.Before(q.To):
			rawFrom, rawParam = outer, "to"
		default:
			needRaw = false // whole buckets only
		}
	}

	// Parameters are numbered as the statement is written.
	var args []any
	param := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	from, to := param(q.From), param(q.To)
	// The window's start in the tenant's zone: date_trunc on local wall time, back to UTC.
	window := from + "::timestamptz"
	if q.Window != "" {
		loc := param(q.Loc.String())
		window = fmt.Sprintf("(date_trunc(%s, t AT TIME ZONE %s) AT TIME ZONE %s)", param(windowSQL[q.Window]), loc, loc)
	}
	// The group's value: of a rollup, its group key's member; of a raw event, its data's.
	group, rollupGroup, rawGroup := "'{}'::jsonb", "NULL::text", "NULL::text"
	if q.GroupBy != "" {
		name := param(q.GroupBy)
		group = "jsonb_build_object(" + name + "::text, g)"
		rollupGroup = "group_key->>" + name
		rawGroup = "data #>> " + param(pathKeys(m.GroupBy[q.GroupBy])) + "::text[]"
	}
	eventType := param(m.EventType)
	var sql string
	if m.rolledUp() {
		value := "1::numeric"
		if m.Aggregation == AggSum {
			value = "(data #>> " + param(pathKeys(*m.ValueProperty)) + "::text[])::numeric"
		}
		innerP, outerP := param(inner), param(outer)
		raw := `SELECT time AS t, ` + rawGroup + ` AS g, ` + value + ` AS v FROM usage_events
		         WHERE type = ` + eventType + ` AND time >= %s AND time < %s`
		sql = `WITH usage AS (
		           SELECT bucket_start AS t, ` + rollupGroup + ` AS g, value AS v FROM usage_rollups
		            WHERE meter_key = ` + param(m.Key) + ` AND bucket_start >= ` + innerP + ` AND bucket_start < ` + outerP + `
		           UNION ALL ` + fmt.Sprintf(raw, from, innerP) + `
		           UNION ALL ` + fmt.Sprintf(raw, outerP, to) + `)
		       SELECT ` + window + ` AS w, ` + group + ` AS g, sum(v)::text FROM usage
		        GROUP BY 1, 2 ORDER BY 1, 2`
	} else {
		sql = `WITH usage AS (
		           SELECT time AS t, ` + rawGroup + ` AS g, data, time FROM usage_events
		            WHERE type = ` + eventType + ` AND time >= ` + from + ` AND time < ` + to + `)
		       SELECT ` + window + ` AS w, ` + group + ` AS g, (` + m.rawAggregate(param(pathKeys(*m.ValueProperty))) + `)::text FROM usage
		        GROUP BY 1, 2 ORDER BY 1, 2`
	}
	err = s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		if keptFrom := s.Clock.Now().Add(-DedupeWindow); needRaw && rawFrom.Before(keptFrom) {
			// Raw events this old may be gone: those before the end of the last invoice.
			until, err := s.Periods.FinalizedUntil(ctx, tx, tenantID)
			if err != nil {
				return err
			}
			if until != nil && rawFrom.Before(*until) {
				if until.Before(keptFrom) {
					keptFrom = *until
				}
				kept := keptFrom.UTC().Format(time.RFC3339)
				if m.rolledUp() {
					return errs.Field(rawParam, "raw events before "+kept+" are not kept: a range before then must fall on 15-minute boundaries")
				}
				return errs.Field("from", m.Aggregation+" meters are answered from raw events, which are kept from "+kept+": from must not be earlier")
			}
		}
		rows, _ := tx.Query(ctx, sql, args...)
		rep.Data, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (UsageRow, error) {
			var row UsageRow
			var v decimal.NullDecimal
			var vs *string
			if err := r.Scan(&row.WindowStart, &row.Group, &vs); err != nil {
				return row, err
			}
			if vs != nil {
				v.Decimal, v.Valid = decimal.RequireFromString(*vs), true
			}
			row.Value = json.Number(v.Decimal.String())
			// The window ends where its whole window ends; the first one is cut at from.
			row.WindowEnd = windowEnd(row.WindowStart, q)
			if row.WindowStart.Before(q.From) {
				row.WindowStart = q.From
			}
			row.WindowStart = row.WindowStart.UTC()
			return row, nil
		})
		if err == nil && len(rep.Data) == 0 && q.Window == "" && q.GroupBy == "" {
			// One element covers [from, to), even when no event falls in it.
			rep.Data = []UsageRow{{WindowStart: rep.From, WindowEnd: rep.To, Value: "0", Group: json.RawMessage("{}")}}
		}
		return err
	})
	if len(rep.Data) > maxWindows {
		return UsageReport{}, errs.Field("window", "too many windows: narrow the range")
	}
	if err != nil {
		return UsageReport{}, fmt.Errorf("usage.query tenant %s meter %s: %w", tenantID, q.Meter, err)
	}
	return rep, nil
}

// windowEnd is the end of the window starting at start (before the first is cut at From), in
// the query's zone; the last window ends at To.
func windowEnd(start time.Time, q UsageQuery) time.Time {
	if q.Window == "" {
		return q.To.UTC()
	}
	local := start.In(q.Loc)
	var end time.Time
	switch q.Window {
	case "hour":
		end = start.Add(time.Hour)
	case "day":
		end = local.AddDate(0, 0, 1)
	case "month":
		end = local.AddDate(0, 1, 0)
	}
	if end.After(q.To) {
		end = q.To
	}
	return end.UTC()
}
