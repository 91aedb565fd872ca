// Package metering turns tenants' usage events into numbers: the meters catalog, ingestion
// (CloudEvents, exactly once), 15-minute rollups, usage queries, quotas and entitlements, and
// the counter of the built-in api_requests meter.
package metering

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strconv"
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

// RollupGranule is the width of a rollup bucket: sums and counts are kept per meter, group
// and 15 minutes.
const RollupGranule = 15 * time.Minute

// IngestResult answers an ingestion.
type IngestResult struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
}

var errTooLate = "falls in a billing period that is already finalized"

// Usage ingests usage events and answers usage queries.
type Usage struct {
	DB      *postgres.DB
	Meters  *Meters
	Periods Periods
	Clock   clock.Clock
}

// DedupeWindow is how long an event's (source, id) is remembered after it is received: a
// duplicate within it is answered as a duplicate (the contract promises 35 days). Raw events
// are kept at least as long, and until their billing period is invoiced; rollups for ever.
const DedupeWindow = 35 * 24 * time.Hour

// DedupeKey is an event's dedupe key: the first 16 bytes of SHA-256 of its source, length
// first, and id, as app.usage_dedupe_key computes it in SQL. Compact and fixed-size, it keeps
// the dedupe index small; keys are per tenant, so only a tenant's own events could collide,
// with odds of 2^-64 at 2^32 events.
func DedupeKey(source, id string) uuid.UUID {
	sum := sha256.Sum256([]byte(strconv.Itoa(len(source)) + ":" + source + id))
	return uuid.UUID(sum[:16])
}

// Ingest stores a batch in one transaction. Each event first claims its dedupe key (INSERT
// ... ON CONFLICT DO NOTHING RETURNING): a key already claimed, by an earlier batch or a
// concurrent one that commits, makes the event a duplicate, so a retried batch answers as
// duplicates rather than as too late, and one probe of the dedupe index decides. Only the rows
// actually inserted feed the rollups, so no event is counted twice.
func (s *Usage) Ingest(ctx context.Context, tenantID uuid.UUID, evs []UsageEvent) (IngestResult, error) {
	meters, err := s.Meters.List(ctx)
	if err != nil {
		return IngestResult{}, err
	}
	n := len(evs)
	keys := make([]uuid.UUID, n)
	for i, e := range evs {
		keys[i] = DedupeKey(e.Source, e.ID)
	}
	now := s.Clock.Now()
	var res IngestResult
	err = s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		finalizedUntil, err := s.Periods.FinalizedUntil(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, `
			INSERT INTO usage_dedupe (tenant_id, key, received_at)
			SELECT $1, k, $3 FROM unnest($2::uuid[]) AS k
			ON CONFLICT DO NOTHING
			RETURNING key`, tenantID, keys, now)
		claimed, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return err
		}
		fresh := make(map[uuid.UUID]bool, len(claimed))
		for _, k := range claimed {
			fresh[k] = true
		}
		// The first event of the batch with a key claimed now is new; the rest are duplicates.
		var news []UsageEvent
		var late batchErrors
		for i, e := range evs {
			if !fresh[keys[i]] {
				continue
			}
			delete(fresh, keys[i])
			if finalizedUntil != nil && e.Time.Before(*finalizedUntil) {
				late.add(i, "time", "event_too_late", errTooLate)
			}
			news = append(news, e)
		}
		if len(late) > 0 {
			return &errs.Error{Kind: errs.Invalid, Code: "event_too_late", Detail: "some events fall in a finalized billing period; none was stored", Fields: late}
		}
		m := len(news)
		sources, ids, types, subjects := make([]string, m), make([]string, m), make([]string, m), make([]*string, m)
		times, datas := make([]time.Time, m), make([][]byte, m)
		for i, e := range news {
			sources[i], ids[i], types[i], subjects[i], times[i], datas[i] = e.Source, e.ID, e.Type, e.Subject, e.Time, e.Data
		}
		// A conflict here is an event sent again, with the same time, after its key left the
		// dedupe window while its raw event is still kept: still a duplicate.
		rows, _ = tx.Query(ctx, `
			INSERT INTO usage_events (tenant_id, source, id, type, subject, time, data, received_at)
			SELECT $1, u.source, u.id, u.type, u.subject, u.time, u.data, $8
			  FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::jsonb[])
			       AS u(source, id, type, subject, time, data)
			ON CONFLICT DO NOTHING
			RETURNING source, id`, tenantID, sources, ids, types, subjects, times, datas, now)
		type key struct{ source, id string }
		inserted, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (key, error) {
			var k key
			return k, r.Scan(&k.source, &k.id)
		})
		if err != nil {
			return err
		}
		res = IngestResult{Accepted: len(inserted), Duplicates: n - len(inserted)}
		stored := news
		if len(inserted) < len(news) {
			in := make(map[key]bool, len(inserted))
			for _, k := range inserted {
				in[k] = true
			}
			stored = nil
			for _, e := range news {
				if in[key{e.Source, e.ID}] {
					stored = append(stored, e)
				}
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
	var u pricing.Usage
	b := &pgx.Batch{}
	if err := s.QueueTotal(ctx, b, meter, p, &u); err != nil {
		return u, err
	}
	if err := s.DB.InTenantRead(ctx, tenantID, b); err != nil {
		return u, fmt.Errorf("usage.total tenant %s meter %s: %w", tenantID, meter, err)
	}
	return u, nil
}

// QueueTotal queues into b the read of a meter's usage over a period, which sets *u when b's
// results are read, in a batch sent for the tenant.
func (s *Usage) QueueTotal(ctx context.Context, b *pgx.Batch, meter string, p pricing.Period, u *pricing.Usage) error {
	m, err := s.Meters.Get(ctx, meter)
	if err != nil {
		return err
	}
	QueueTotal(b, m, p, u)
	return nil
}

// QueueTotal is Usage.QueueTotal for a meter the caller has read (Meters.List): the billing
// period closer sends it with the other reads of the tenant's transaction, and reads the
// catalog before the transaction rather than inside it.
func QueueTotal(b *pgx.Batch, m Meter, p pricing.Period, u *pricing.Usage) {
	var sql string
	args := []any{p.Start, p.End}
	if m.rolledUp() {
		sql = "SELECT coalesce(sum(value), 0)::text, coalesce(sum(events), 0) FROM usage_rollups WHERE meter_key = $3 AND bucket_start >= $1 AND bucket_start < $2"
		args = append(args, m.Key)
	} else {
		sql = "SELECT coalesce(" + m.rawAggregate("$4") + ", 0)::text, count(*) FROM usage_events WHERE type = $3 AND time >= $1 AND time < $2"
		args = append(args, m.EventType, pathKeys(*m.ValueProperty))
	}
	b.Queue(sql, args...).QueryRow(func(row pgx.Row) error {
		var q string
		if err := row.Scan(&q, &u.Events); err != nil {
			return err
		}
		var err error
		u.Quantity, err = decimal.NewFromString(q)
		return err
	})
}
