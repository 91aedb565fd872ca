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
	if m.rolledUp() && (q.From.Truncate(RollupGranule) != q.From || q.To.Truncate(RollupGranule) != q.To) {
		f.Add("from", "sum and count meters answer on 15-minute boundaries: from and to must fall on them")
	}
	if q.GroupBy != "" {
		if _, ok := m.GroupBy[q.GroupBy]; !ok {
			f.Add("group_by", "is not a group of meter "+m.Key)
		}
	}
	return f.Err()
}

// Query answers a meter's usage for a tenant: sums and counts from the 15-minute rollups,
// max, unique_count and latest from the raw events.
func (s *Usage) Query(ctx context.Context, tenantID uuid.UUID, q UsageQuery) (UsageReport, error) {
	m, err := s.Meters.Get(ctx, q.Meter)
	if err != nil {
		return UsageReport{}, err
	}
	if err := q.Validate(m); err != nil {
		return UsageReport{}, err
	}
	rep := UsageReport{Meter: m.Key, From: q.From.UTC(), To: q.To.UTC(), Data: []UsageRow{}}
	if q.Window != "" {
		rep.Window = &q.Window
	}
	// The window's start in the tenant's zone: date_trunc on local wall time, back to UTC.
	// Every parameter is referenced whatever the query asks, as PostgreSQL requires.
	const window = `CASE WHEN $6 = '' THEN $2::timestamptz ELSE (date_trunc($6, %s AT TIME ZONE $4) AT TIME ZONE $4) END`
	const group = `CASE WHEN $5 = '' THEN '{}'::jsonb ELSE jsonb_build_object($5::text, %s) END`
	// $1 selects the rows: the meter's rollups, or its event type's raw events.
	args := []any{m.Key, q.From, q.To, q.Loc.String(), q.GroupBy, windowSQL[q.Window]}
	var sql string
	if m.rolledUp() {
		sql = `SELECT ` + fmt.Sprintf(window, "bucket_start") + ` AS w, ` + fmt.Sprintf(group, "group_key->>$5") + ` AS g, sum(value)::text
		         FROM usage_rollups WHERE meter_key = $1 AND bucket_start >= $2 AND bucket_start < $3
		        GROUP BY 1, 2 ORDER BY 1, 2`
	} else {
		groupPath := []string{}
		if q.GroupBy != "" {
			groupPath = pathKeys(m.GroupBy[q.GroupBy])
		}
		args[0] = m.EventType
		args = append(args, pathKeys(*m.ValueProperty), groupPath)
		sql = `SELECT ` + fmt.Sprintf(window, "time") + ` AS w, ` + fmt.Sprintf(group, "data #>> $8::text[]") + ` AS g, (` + m.rawAggregate("$7") + `)::text
		         FROM usage_events WHERE type = $1 AND time >= $2 AND time < $3
		        GROUP BY 1, 2 ORDER BY 1, 2`
	}
	err = s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
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
			if row.WindowStart.Before(q.From) {
				row.WindowStart = q.From // the first window is cut at from
			}
			row.WindowStart = row.WindowStart.UTC()
			row.WindowEnd = windowEnd(row.WindowStart, q)
			return row, nil
		})
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

// windowEnd is the end of the window starting at start, in the query's zone; the last
// window ends at To and none starts before From.
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
