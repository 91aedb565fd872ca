package metering

import (
	"context"
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
	"github.com/saasbase/saasbase/internal/billing/plans"
	"github.com/saasbase/saasbase/internal/billing/pricing"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// The built-in meter of authenticated API requests.
const requestsMeter = "api_requests"

// RequestCounter counts every authenticated API request of a tenant into the api_requests meter
// without a database write per request: counts gather in memory and a flush adds them to the
// rollups every second, one transaction per tenant. A crash loses at most the unflushed
// second. Nothing is counted twice: a flush that fails before it reached the database is
// retried with the next one, and one whose fate is unknown (the connection broke during the
// commit) is dropped.
//
// It also enforces hard quotas on api_requests: the tenant's usage this period, as of the
// last flush, plus what this replica has counted since, may not pass the limit. The overshoot
// is at most one flush interval of traffic per replica.
type RequestCounter struct {
	DB     *postgres.DB
	Quotas *Quotas
	Clock  clock.Clock
	Logger *slog.Logger

	mu      sync.Mutex
	pending map[uuid.UUID]int64      // counted, not yet flushed
	used    map[uuid.UUID]quotaState // usage as of the last flush, per tenant
}

type quotaState struct {
	period pricing.Period
	usage  decimal.Decimal
	quota  *plans.Quota
}

// Count is the middleware that counts a request and refuses it past a hard quota. It sits
// after authentication and the tenant's status check.
func (q *RequestCounter) Count(next http.Handler) http.Handler {
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
func (q *RequestCounter) admit(ctx context.Context, tenantID uuid.UUID) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending == nil {
		q.pending, q.used = map[uuid.UUID]int64{}, map[uuid.UUID]quotaState{}
	}
	st, known := q.used[tenantID]
	if known && st.quota != nil && st.quota.Enforcement == "hard" && q.Clock.Now().Before(st.period.End) {
		if st.usage.Add(decimal.NewFromInt(q.pending[tenantID] + 1)).GreaterThan(decimal.NewFromInt(st.quota.Limit)) {
			return errQuota{until: st.period.End}
		}
	}
	q.pending[tenantID]++
	return nil
}

// Flush adds the pending counts to the rollups and refreshes each tenant's quota standing.
func (q *RequestCounter) Flush(ctx context.Context) (int, error) {
	q.mu.Lock()
	pending := q.pending
	q.pending = map[uuid.UUID]int64{}
	if q.used == nil {
		q.used = map[uuid.UUID]quotaState{}
	}
	q.mu.Unlock()

	now := q.Clock.Now()
	bucket := now.Truncate(RollupGranule)
	flushed := 0
	for tenantID, n := range pending {
		err := q.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
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
func (q *RequestCounter) refresh(ctx context.Context, tenantID uuid.UUID) error {
	plan, p, err := q.Quotas.current(ctx, tenantID)
	if err != nil {
		return err
	}
	u, err := q.Quotas.Usage.Total(ctx, tenantID, requestsMeter, p)
	if err != nil {
		return err
	}
	st := quotaState{period: p, usage: u.Quantity}
	if quota, ok := plan.Quotas[requestsMeter]; ok {
		st.quota = &quota
		if err := q.Quotas.Thresholds(ctx, tenantID, requestsMeter, quota, p, u.Quantity); err != nil {
			return err
		}
	}
	q.mu.Lock()
	q.used[tenantID] = st
	q.mu.Unlock()
	return nil
}
