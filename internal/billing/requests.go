package billing

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// The built-in meter of authenticated API requests.
const requestsMeter = "api_requests"

// Requests counts every authenticated API request of a tenant into the api_requests meter
// without a database write per request: counts gather in memory and a flush adds them to the
// rollups every second, one transaction per tenant. A crash loses at most the unflushed
// second. Nothing is counted twice: a flush that fails before it reached the database is
// retried with the next one, and one whose fate is unknown (the connection broke during the
// commit) is dropped.
//
// It also enforces hard quotas on api_requests: the tenant's usage this period, as of the
// last flush, plus what this replica has counted since, may not pass the limit. The overshoot
// is at most one flush interval of traffic per replica.
type Requests struct {
	Invoices *Invoices
	Logger   *slog.Logger

	mu      sync.Mutex
	pending map[uuid.UUID]int64      // counted, not yet flushed
	used    map[uuid.UUID]quotaState // usage as of the last flush, per tenant
}

type quotaState struct {
	period Period
	usage  decimal.Decimal
	quota  *Quota
}

// Count is the middleware that counts a request and refuses it past a hard quota. It sits
// after authentication and the tenant's status check.
func (q *Requests) Count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := auth.FromContext(r.Context())
		if !ok || p.TenantID == uuid.Nil {
			next.ServeHTTP(w, r)
			return
		}
		if err := q.admit(r.Context(), p.TenantID); err != nil {
			httpx.Error(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// errQuota is the answer past a hard quota, until the period ends.
type errQuota struct{ until time.Time }

func (e errQuota) Error() string { return "quota_exceeded" }

func (e errQuota) Unwrap() error {
	return errs.E(errs.RateLimited, "quota_exceeded", "the plan's quota of %s for this billing period is spent; it renews at %s",
		requestsMeter, e.until.Format(time.RFC3339))
}

// SetHeaders tells the client when the quota renews.
func (e errQuota) SetHeaders(h http.Header) {
	secs := int(math.Ceil(time.Until(e.until).Seconds()))
	h.Set("Retry-After", strconv.Itoa(max(1, secs)))
}

func (e errQuota) PolicyName() string { return "quota:" + requestsMeter }

// admit counts a request, or refuses it if a hard quota is spent.
func (q *Requests) admit(ctx context.Context, tenantID uuid.UUID) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending == nil {
		q.pending, q.used = map[uuid.UUID]int64{}, map[uuid.UUID]quotaState{}
	}
	st, known := q.used[tenantID]
	if known && st.quota != nil && st.quota.Enforcement == "hard" && q.Invoices.Clock.Now().Before(st.period.End) {
		if st.usage.Add(decimal.NewFromInt(q.pending[tenantID] + 1)).GreaterThan(decimal.NewFromInt(st.quota.Limit)) {
			return errQuota{until: st.period.End}
		}
	}
	q.pending[tenantID]++
	return nil
}

// Flush adds the pending counts to the rollups and refreshes each tenant's quota standing.
func (q *Requests) Flush(ctx context.Context) (int, error) {
	q.mu.Lock()
	pending := q.pending
	q.pending = map[uuid.UUID]int64{}
	if q.used == nil {
		q.used = map[uuid.UUID]quotaState{}
	}
	q.mu.Unlock()

	now := q.Invoices.Clock.Now()
	bucket := now.Truncate(rollupGranule)
	flushed := 0
	for tenantID, n := range pending {
		err := q.Invoices.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
			return upsertRollups(ctx, tx, tenantID, map[rollupKey]rollupSum{
				{requestsMeter, bucket, "{}"}: {decimal.NewFromInt(n), n},
			})
		})
		if err != nil {
			if pgconn.SafeToRetry(err) {
				q.mu.Lock()
				q.pending[tenantID] += n // nothing reached the database: count it next time
				q.mu.Unlock()
			}
			q.Logger.WarnContext(ctx, "api_requests flush failed", slog.String("tenant_id", tenantID.String()), slog.String("error", err.Error()))
			continue
		}
		flushed++
		if err := q.refresh(ctx, tenantID); err != nil {
			q.Logger.WarnContext(ctx, "api_requests quota refresh failed", slog.String("tenant_id", tenantID.String()), slog.String("error", err.Error()))
		}
	}
	return flushed, nil
}

// refresh reads a tenant's api_requests usage this period and its plan's quota, and emits the
// threshold events it has crossed.
func (q *Requests) refresh(ctx context.Context, tenantID uuid.UUID) error {
	ti, _, p, err := q.Invoices.period(ctx, tenantID, q.Invoices.Clock.Now())
	if err != nil {
		return err
	}
	plan, err := q.Invoices.Plans.Get(ctx, ti.Plan)
	if err != nil {
		return err
	}
	u, err := q.Invoices.Usage.Total(ctx, tenantID, requestsMeter, p)
	if err != nil {
		return err
	}
	st := quotaState{period: p, usage: u.Quantity}
	if quota, ok := plan.Quotas[requestsMeter]; ok {
		st.quota = &quota
		if err := q.Invoices.Thresholds(ctx, tenantID, requestsMeter, quota, p, u.Quantity); err != nil {
			return err
		}
	}
	q.mu.Lock()
	q.used[tenantID] = st
	q.mu.Unlock()
	return nil
}

// thresholds are the shares of a quota whose crossing emits usage.quota_threshold_reached.
var thresholds = []int64{80, 100}

// Thresholds emits usage.quota_threshold_reached once per threshold and period when usage has
// reached it. The outbox itself remembers what was emitted, under a transaction-scoped lock
// per tenant and meter so two replicas do not both emit.
func (s *Invoices) Thresholds(ctx context.Context, tenantID uuid.UUID, meter string, quota Quota, p Period, usage decimal.Decimal) error {
	if quota.Limit <= 0 {
		return nil
	}
	return s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		for _, pct := range thresholds {
			if usage.Mul(decimal.NewFromInt(100)).LessThan(decimal.NewFromInt(quota.Limit * pct)) {
				break
			}
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
				fmt.Sprintf("threshold/%s/%s", tenantID, meter)); err != nil {
				return err
			}
			var seen bool
			err := tx.QueryRow(ctx, `
				SELECT EXISTS (SELECT FROM outbox WHERE type = 'usage.quota_threshold_reached'
				                  AND data->>'meter' = $1 AND (data->>'threshold')::int = $2
				                  AND (data->>'period_start')::timestamptz = $3)`, meter, pct, p.Start).Scan(&seen)
			if err != nil || seen {
				if err != nil {
					return err
				}
				continue
			}
			err = s.Outbox.Append(ctx, tx, tenantID, "usage.quota_threshold_reached", map[string]any{
				"meter": meter, "threshold": pct, "limit": quota.Limit, "usage": usage,
				"enforcement": quota.Enforcement, "period_start": p.Start, "period_end": p.End,
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}
