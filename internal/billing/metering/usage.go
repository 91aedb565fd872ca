// Package metering turns tenants' usage events into numbers: the meters catalog, ingestion
// (CloudEvents, exactly once), 15-minute rollups, usage queries, quotas and entitlements, and
// the counter of the built-in api_requests meter.
package metering

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/saasbase/saasbase/internal/billing/pricing"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Ingestion limits.
const (
	MaxBatch        = 1000
	MaxUsageBody    = 5 << 20
	maxFuture       = 5 * time.Minute
	maxAttributeLen = 256
)

// RollupGranule is the width of a rollup bucket: sums and counts are kept per meter, group
// and 15 minutes.
const RollupGranule = 15 * time.Minute

// UsageEvent is a CloudEvent of usage.
type UsageEvent struct {
	Source  string
	ID      string
	Type    string
	Subject *string
	Time    time.Time
	Data    json.RawMessage
	data    map[string]any // Data decoded with exact numbers
}

// IngestResult answers an ingestion.
type IngestResult struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
}

var extensionName = regexp.MustCompile(`^[a-z0-9]{1,20}$`)

// batchErrors collects problems by event index, so a client learns every problem at once.
type batchErrors []errs.FieldError

func (b *batchErrors) add(i int, field, code, msg string) {
	*b = append(*b, errs.FieldError{Index: &i, Field: field, Code: code, Message: msg})
}

func (b batchErrors) err() error {
	if len(b) == 0 {
		return nil
	}
	return &errs.Error{Kind: errs.Invalid, Code: "validation_failed", Detail: "some events are invalid; none was stored", Fields: b}
}

// ParseEvents reads one CloudEvent or an array of up to MaxBatch, and checks every one of
// them against the meters before anything is stored: all or nothing.
func ParseEvents(body []byte, meters []Meter, now time.Time) ([]UsageEvent, error) {
	body = bytes.TrimSpace(body)
	var raws []json.RawMessage
	if len(body) > 0 && body[0] == '[' {
		if err := json.Unmarshal(body, &raws); err != nil {
			return nil, errs.Field("body", "must be a CloudEvent or an array of CloudEvents")
		}
		if len(raws) == 0 || len(raws) > MaxBatch {
			return nil, errs.Field("body", fmt.Sprintf("a batch holds 1 to %d events", MaxBatch))
		}
	} else {
		raws = []json.RawMessage{body}
	}
	var problems batchErrors
	out := make([]UsageEvent, len(raws))
	for i, raw := range raws {
		out[i] = parseEvent(i, raw, meters, now, &problems)
	}
	return out, problems.err()
}

func parseEvent(i int, raw json.RawMessage, meters []Meter, now time.Time, problems *batchErrors) UsageEvent {
	var attrs map[string]json.RawMessage
	if err := json.Unmarshal(raw, &attrs); err != nil {
		problems.add(i, "", "invalid", "must be a JSON object (a CloudEvent)")
		return UsageEvent{}
	}
	str := func(name string, required bool) (string, bool) {
		v, ok := attrs[name]
		if !ok {
			if required {
				problems.add(i, name, "required", "is required")
			}
			return "", false
		}
		var s string
		if json.Unmarshal(v, &s) != nil || (required && s == "") || len(s) > maxAttributeLen {
			problems.add(i, name, "invalid", fmt.Sprintf("must be a string of 1 to %d characters", maxAttributeLen))
			return "", false
		}
		return s, true
	}
	var ev UsageEvent
	if v, _ := str("specversion", true); v != "" && v != "1.0" {
		problems.add(i, "specversion", "invalid", `must be "1.0"`)
	}
	ev.ID, _ = str("id", true)
	ev.Source, _ = str("source", true)
	ev.Type, _ = str("type", true)
	if s, ok := str("subject", false); ok {
		ev.Subject = &s
	}
	ev.Time = now
	if s, ok := str("time", false); ok {
		t, err := time.Parse(time.RFC3339Nano, s)
		switch {
		case err != nil:
			problems.add(i, "time", "invalid", "must be an RFC 3339 time")
		case t.After(now.Add(maxFuture)):
			problems.add(i, "time", "invalid", "is more than 5 minutes in the future")
		default:
			ev.Time = t.UTC()
		}
	}
	ev.Data = attrs["data"]
	if len(ev.Data) == 0 || string(ev.Data) == "null" {
		ev.Data = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(ev.Data))
	dec.UseNumber()
	if err := dec.Decode(&ev.data); err != nil {
		problems.add(i, "data", "invalid", "must be a JSON object")
	}
	for name, v := range attrs {
		switch name {
		case "specversion", "id", "source", "type", "subject", "time", "data", "datacontenttype", "dataschema":
			continue
		}
		if !extensionName.MatchString(name) || len(v) == 0 || (v[0] == '{' || v[0] == '[') {
			problems.add(i, name, "invalid", "an extension attribute has a lowercase alphanumeric name and a scalar value")
		}
	}
	for _, m := range meters {
		if m.EventType != ev.Type || m.ValueProperty == nil || ev.data == nil {
			continue
		}
		if m.Aggregation == AggUniqueCount {
			if _, ok := lookup(ev.data, *m.ValueProperty); !ok {
				problems.add(i, "data"+strings.TrimPrefix(*m.ValueProperty, "$"), "required", "is required by meter "+m.Key)
			}
			continue
		}
		if _, err := numberAt(ev.data, *m.ValueProperty); err != nil {
			problems.add(i, "data"+strings.TrimPrefix(*m.ValueProperty, "$"), "invalid", err.Error()+" (meter "+m.Key+")")
		}
	}
	return ev
}

// lookup follows a "$.a.b" path into decoded data.
func lookup(data map[string]any, path string) (any, bool) {
	var cur any = data
	for _, k := range pathKeys(path) {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[k]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// numberAt reads an exact decimal at path: a JSON number or a numeric string.
func numberAt(data map[string]any, path string) (decimal.Decimal, error) {
	v, ok := lookup(data, path)
	if !ok {
		return decimal.Decimal{}, fmt.Errorf("is required")
	}
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		return decimal.Decimal{}, fmt.Errorf("must be a number or a numeric string")
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("must be a number or a numeric string")
	}
	return d, nil
}

// groupKey is the JSON object of an event's group values (sorted keys; missing groups left out).
func groupKey(m Meter, data map[string]any) string {
	g := map[string]string{}
	for name, path := range m.GroupBy {
		if v, ok := lookup(data, path); ok {
			g[name] = fmt.Sprint(v)
		}
	}
	b, _ := json.Marshal(g)
	return string(b)
}

var errTooLate = "falls in a billing period that is already finalized"

// Usage ingests usage events and answers usage queries.
type Usage struct {
	DB      *postgres.DB
	Meters  *Meters
	Periods Periods
	Clock   clock.Clock
}

// Ingest stores a batch in one transaction. Duplicates, on (tenant, source, id), are
// recognised first, so a retried batch answers as duplicates rather than as too late. Only
// the rows actually inserted (INSERT ... ON CONFLICT DO NOTHING RETURNING) feed the rollups,
// so a concurrent duplicate can never be counted twice.
func (s *Usage) Ingest(ctx context.Context, tenantID uuid.UUID, evs []UsageEvent) (IngestResult, error) {
	meters, err := s.Meters.List(ctx)
	if err != nil {
		return IngestResult{}, err
	}
	n := len(evs)
	sources, ids, types, subjects := make([]string, n), make([]string, n), make([]string, n), make([]*string, n)
	times, datas := make([]time.Time, n), make([][]byte, n)
	for i, e := range evs {
		sources[i], ids[i], types[i], subjects[i], times[i], datas[i] = e.Source, e.ID, e.Type, e.Subject, e.Time, e.Data
	}
	var res IngestResult
	err = s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		// Which are duplicates, and where the last finalized period ends.
		rows, _ := tx.Query(ctx, `
			SELECT u.ord - 1 FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(source, id, ord)
			  JOIN usage_events e ON e.source = u.source AND e.id = u.id`, sources, ids)
		dups, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		finalizedUntil, err := s.Periods.FinalizedUntil(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		if finalizedUntil != nil {
			var late batchErrors
			for i, e := range evs {
				if e.Time.Before(*finalizedUntil) && !slices.Contains(dups, int64(i)) {
					late.add(i, "time", "event_too_late", errTooLate)
				}
			}
			if len(late) > 0 {
				return &errs.Error{Kind: errs.Invalid, Code: "event_too_late", Detail: "some events fall in a finalized billing period; none was stored", Fields: late}
			}
		}

		rows, _ = tx.Query(ctx, `
			INSERT INTO usage_events (tenant_id, source, id, type, subject, time, data, received_at)
			SELECT $1, u.source, u.id, u.type, u.subject, u.time, u.data, $8
			  FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::jsonb[])
			       AS u(source, id, type, subject, time, data)
			ON CONFLICT DO NOTHING
			RETURNING source, id`, tenantID, sources, ids, types, subjects, times, datas, s.Clock.Now())
		type key struct{ source, id string }
		inserted, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (key, error) {
			var k key
			return k, r.Scan(&k.source, &k.id)
		})
		if err != nil {
			return err
		}
		res = IngestResult{Accepted: len(inserted), Duplicates: n - len(inserted)}
		fresh := make(map[key]bool, len(inserted))
		for _, k := range inserted {
			fresh[k] = true
		}
		var stored []UsageEvent
		for _, e := range evs {
			if k := (key{e.Source, e.ID}); fresh[k] {
				stored = append(stored, e)
				delete(fresh, k) // the same event twice in one batch counts once
			}
		}
		return addRollups(ctx, tx, tenantID, meters, stored)
	})
	if err != nil {
		return IngestResult{}, fmt.Errorf("usage.ingest tenant %s: %w", tenantID, err)
	}
	return res, nil
}

type rollupKey struct {
	meter  string
	bucket time.Time
	group  string
}

type rollupSum struct {
	value  decimal.Decimal
	events int64
}

// addRollups adds events to the sum and count rollups, in one statement, with the rows in
// key order so that concurrent batches lock them in the same order and cannot deadlock.
func addRollups(ctx context.Context, tx pgx.Tx, tenantID uuid.UUID, meters []Meter, evs []UsageEvent) error {
	agg := map[rollupKey]rollupSum{}
	for _, e := range evs {
		for _, m := range meters {
			if m.EventType != e.Type || !m.rolledUp() {
				continue
			}
			v := decimal.NewFromInt(1)
			if m.Aggregation == AggSum {
				v, _ = numberAt(e.data, *m.ValueProperty) // validated by ParseEvents
			}
			k := rollupKey{m.Key, e.Time.Truncate(RollupGranule), groupKey(m, e.data)}
			cur := agg[k]
			agg[k] = rollupSum{cur.value.Add(v), cur.events + 1}
		}
	}
	return upsertRollups(ctx, tx, tenantID, agg)
}

func upsertRollups(ctx context.Context, tx pgx.Tx, tenantID uuid.UUID, agg map[rollupKey]rollupSum) error {
	if len(agg) == 0 {
		return nil
	}
	keys := make([]rollupKey, 0, len(agg))
	for k := range agg {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b rollupKey) int {
		if c := strings.Compare(a.meter, b.meter); c != 0 {
			return c
		}
		if c := a.bucket.Compare(b.bucket); c != 0 {
			return c
		}
		return strings.Compare(a.group, b.group)
	})
	n := len(keys)
	meterKeys, buckets, groups, values, counts := make([]string, n), make([]time.Time, n), make([]string, n), make([]string, n), make([]int64, n)
	for i, k := range keys {
		meterKeys[i], buckets[i], groups[i] = k.meter, k.bucket, k.group
		values[i], counts[i] = agg[k].value.String(), agg[k].events
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO usage_rollups (tenant_id, meter_key, bucket_start, group_key, value, events)
		SELECT $1, u.m, u.b, u.g::jsonb, u.v::numeric, u.e
		  FROM unnest($2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::bigint[]) AS u(m, b, g, v, e)
		 ORDER BY u.m, u.b, u.g
		ON CONFLICT (tenant_id, meter_key, bucket_start, group_key) DO UPDATE
		   SET value = usage_rollups.value + excluded.value, events = usage_rollups.events + excluded.events`,
		tenantID, meterKeys, buckets, groups, values, counts)
	return err
}

// Total answers a meter's usage over a period, for pricing and quotas.
func (s *Usage) Total(ctx context.Context, tenantID uuid.UUID, meter string, p pricing.Period) (pricing.Usage, error) {
	m, err := s.Meters.Get(ctx, meter)
	if err != nil {
		return pricing.Usage{}, err
	}
	var sql string
	args := []any{p.Start, p.End}
	if m.rolledUp() {
		sql = "SELECT coalesce(sum(value), 0)::text, coalesce(sum(events), 0) FROM usage_rollups WHERE meter_key = $3 AND bucket_start >= $1 AND bucket_start < $2"
		args = append(args, m.Key)
	} else {
		sql = "SELECT coalesce(" + m.rawAggregate("$4") + ", 0)::text, count(*) FROM usage_events WHERE type = $3 AND time >= $1 AND time < $2"
		args = append(args, m.EventType, pathKeys(*m.ValueProperty))
	}
	var u pricing.Usage
	var q string
	b := &pgx.Batch{}
	b.Queue(sql, args...).QueryRow(func(row pgx.Row) error { return row.Scan(&q, &u.Events) })
	if err := s.DB.InTenantRead(ctx, tenantID, b); err != nil {
		return u, fmt.Errorf("usage.total tenant %s meter %s: %w", tenantID, meter, err)
	}
	u.Quantity, err = decimal.NewFromString(q)
	return u, err
}
