package invoicing

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/billing/metering"
	"github.com/saasbase/saasbase/internal/billing/plans"
	"github.com/saasbase/saasbase/internal/billing/pricing"
	"github.com/saasbase/saasbase/internal/platform/errs"
)

// Close finalizes the stored periods that ended more than Grace ago and have no invoice yet,
// oldest first, and stores the periods that have begun. One indexed query per chunk of 1,000
// tenants finds those with such work, with their plan and the bounds of their periods due
// (app.billing_close_work); Workers of them are closed side by side, each in one transaction
// of two round trips (closeOnce). A period it cannot finalize keeps its error and is tried
// again on the next run; the failure is logged, counted and listed for the operator (GET
// /v1/admin/billing/failing-periods). Several replicas may run it: a period is finalized
// under its row's lock, taken with SKIP LOCKED, and checked for an invoice under it, so each
// period is finalized once.
func (s *Invoices) Close(ctx context.Context) (int, error) {
	now := s.Clock.Now()
	r := &closeRun{s: s, now: now, closable: now.Add(-s.Grace), plans: map[string]*plans.Versioned{}}
	var after *uuid.UUID
	done, failed := 0, 0
	defer func() { s.Metrics.failing.Set(float64(failed)) }()
	for {
		rows, _ := s.DB.Pool.Query(ctx, "SELECT tenant_id, plan_code, to_store, due_starts, due_ends FROM app.billing_close_work($1, $2, $3, 1000)", now, r.closable, after)
		work, err := pgx.CollectRows(rows, scanWork)
		if err != nil {
			return done, fmt.Errorf("invoices.close: %w", err)
		}
		if len(work) == 0 {
			return done, nil
		}
		n, f := r.closeTenants(ctx, work)
		done, failed = done+n, failed+f
		if err := ctx.Err(); err != nil {
			return done, err
		}
		after = &work[len(work)-1].tenant
	}
}

// tenantWork is what the closer has to do for a tenant, as its chunk's query saw it.
type tenantWork struct {
	tenant uuid.UUID
	plan   string
	store  bool             // no stored period covers now: the next ones must be stored
	due    []pricing.Period // the stored periods to finalize, oldest first
}

func scanWork(row pgx.CollectableRow) (tenantWork, error) {
	var (
		w          tenantWork
		starts, ed []time.Time
	)
	err := row.Scan(&w.tenant, &w.plan, &w.store, &starts, &ed)
	for i := range min(len(starts), len(ed)) {
		w.due = append(w.due, pricing.Period{Start: starts[i].UTC(), End: ed[i].UTC()})
	}
	return w, err
}

// closeRun is one run of the closer: its clock, and the plans it has read. A plan is read
// once per run, not per tenant; each tenant's transaction reads the version of its plan
// (plans.VersionColumn) and reads the plan again if it changed, so that a plan changed
// during a run prices the periods closed after the change.
type closeRun struct {
	s             *Invoices
	now, closable time.Time
	mu            sync.Mutex
	plans         map[string]*plans.Versioned // by code; an entry is replaced, never changed
}

// plan answers the run's copy of a plan, reading it on first use.
func (r *closeRun) plan(ctx context.Context, code string) *plans.Versioned {
	r.mu.Lock()
	v := r.plans[code]
	r.mu.Unlock()
	if v != nil {
		return v
	}
	v = &plans.Versioned{}
	b := &pgx.Batch{}
	plans.QueueGet(b, code, v)
	if err := r.s.DB.Pool.SendBatch(ctx, b).Close(); err != nil {
		// Not kept: the tenant's transaction reads it again.
		return &plans.Versioned{Err: err}
	}
	r.keep(code, v)
	return v
}

func (r *closeRun) keep(code string, v *plans.Versioned) {
	r.mu.Lock()
	r.plans[code] = v
	r.mu.Unlock()
}

// closeTenants closes the tenants' periods, Workers tenants at a time.
func (r *closeRun) closeTenants(ctx context.Context, work []tenantWork) (done, failed int) {
	ch := make(chan tenantWork)
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	workers := r.s.Workers
	if workers <= 0 {
		workers = 4
	}
	for range min(workers, len(work)) {
		wg.Go(func() {
			for w := range ch {
				n, f := r.closeTenant(ctx, w)
				mu.Lock()
				done, failed = done+n, failed+f
				mu.Unlock()
			}
		})
	}
	for _, w := range work {
		if ctx.Err() != nil {
			break
		}
		ch <- w
	}
	close(ch)
	wg.Wait()
	return done, failed
}

// closeTenant stores the tenant's periods up to now and finalizes those due, answering how
// many it finalized and how many failed. A failed transaction is recorded against each period
// it was to finalize.
func (r *closeRun) closeTenant(ctx context.Context, w tenantWork) (done, failed int) {
	s := r.s
	// Twice at most: periods stored by the first pass that are due already (a tenant without
	// periods, or whose closer did not run for a month) are finalized by a second, which
	// takes the close lock the first did not.
	for pass := 0; pass < 2; pass++ {
		res, err := r.closeOnce(ctx, w)
		if err != nil {
			err = fmt.Errorf("invoices.close tenant %s: %w", w.tenant, err)
			if len(w.due) == 0 {
				s.Logger.ErrorContext(ctx, "invoicing: closing periods", slog.String("tenant_id", w.tenant.String()), slog.String("error", err.Error()))
				return done, failed
			}
			return done, failed + r.failed(ctx, w.tenant, w.due, err)
		}
		done, failed = done+res.done, failed+len(res.failures)
		for _, f := range res.failures {
			r.logFailure(ctx, w.tenant, f.Period, f.err)
		}
		if len(res.more) == 0 {
			break
		}
		w = tenantWork{tenant: w.tenant, plan: res.plan, due: res.more}
	}
	return done, failed
}

// closed is what one transaction of closeOnce did.
type closed struct {
	done     int
	failures []failure        // periods it could not price, recorded with them
	more     []pricing.Period // periods it stored that are due, left for another pass
	plan     string           // the tenant's plan
}

type failure struct {
	pricing.Period
	err error
}

// claim is a period due, locked for this closer.
type claim struct {
	pricing.Period
	invoiced bool // invoiced already, before periods recorded it
}

// The statements of closeOnce's first round trip, in order.
const (
	// The periods due, oldest first. A period's row is the claim: another closer
	// finalizing it holds it, and this one passes it by rather than pricing it again.
	claimQuery = `SELECT p.period_start, p.period_end, EXISTS (SELECT FROM invoices i WHERE i.period_start = p.period_start)
		FROM billing_periods p WHERE p.closed_at IS NULL AND p.period_end <= $1
		ORDER BY p.period_start FOR UPDATE OF p SKIP LOCKED`
	// The close lock, if this closer claimed a period (the rows it holds are not skipped):
	// ingestion takes it shared before it checks for finalized periods, so usage is either
	// in the invoice priced here, or refused as too late, never accepted and lost. Only
	// the reads of usage after it count. A closer that claimed nothing does not wait for it.
	closeLockQuery = `SELECT pg_advisory_xact_lock(` + closeLock + `)
		WHERE EXISTS (SELECT FROM billing_periods WHERE closed_at IS NULL AND period_end <= $2 FOR UPDATE SKIP LOCKED)`
	lockPeriods = "SELECT pg_advisory_xact_lock(" + periodsLock + ")"
	// The tenant, the version of its plan and, if it has periods to store (read after the
	// periods lock, in a statement of their own, so as to see what the lock's last holder
	// stored), its last stored period, or where its invoices end if it has none.
	tenantQuery = "SELECT t.plan_code, t.timezone, t.created_at, pl." + plans.VersionColumn + `
		FROM tenants t LEFT JOIN plans pl ON pl.code = t.plan_code WHERE t.id = $1`
	tenantAndLastQuery = "SELECT t.plan_code, t.timezone, t.created_at, pl." + plans.VersionColumn + `,
		       l.period_start, l.period_end, (SELECT max(period_end) FROM invoices WHERE l.period_start IS NULL)
		FROM tenants t LEFT JOIN plans pl ON pl.code = t.plan_code
		LEFT JOIN LATERAL (SELECT period_start, period_end FROM billing_periods ORDER BY period_start DESC LIMIT 1) l ON true
		WHERE t.id = $1`
)

// The statements of its second.
const (
	// The invoice, and its period finalized with it.
	insertInvoice = `WITH i AS (INSERT INTO invoices (tenant_id, id, period_start, period_end, currency, plan_code, lines, subtotal, total, status, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'open', $10, $10))
		UPDATE billing_periods SET close_error = NULL, close_failed_at = NULL, closed_at = $10 WHERE period_start = $3`
	markClosed    = "UPDATE billing_periods SET close_error = NULL, close_failed_at = NULL, closed_at = $2 WHERE period_start = $1"
	recordFailure = `UPDATE billing_periods SET close_attempts = close_attempts + 1, close_error = $2, close_failed_at = $3
		WHERE period_start = ANY ($1) AND closed_at IS NULL`
)

// closeOnce is one transaction of the tenant's, in two round trips: the first claims its
// periods due, takes the close lock (and the periods lock, if it has periods to store) and
// reads what pricing them needs, the usage of the periods the chunk named included; the
// second stores the next periods, the invoices, their periods' finalization and their
// invoice.finalized events, or the failure to price one, and commits. A round trip more only
// for what the chunk could not foresee: a plan changed meanwhile, a period it did not name.
func (r *closeRun) closeOnce(ctx context.Context, w tenantWork) (out closed, err error) {
	s := r.s
	cached := r.plan(ctx, w.plan)
	var (
		claimed       []claim
		locked        bool
		last          *pricing.Period
		invoicedUntil *time.Time
		plan, tz      string
		created       time.Time
		version       *string
	)
	// The catalog of meters, read before the transaction (from the catalog's cache, most
	// often): a transaction holding the close lock must not wait for a connection of the
	// pool, which the ingestions waiting for that lock may be holding.
	meters, err := s.Usage.Meters.List(ctx)
	if err != nil {
		return out, err
	}
	usage := map[pricing.Period]map[string]*pricing.Usage{}
	queueUsage := func(b *pgx.Batch, plan *plans.Versioned, p pricing.Period) error {
		if plan.Err != nil {
			return nil
		}
		if usage[p] == nil {
			usage[p] = map[string]*pricing.Usage{}
		}
		for _, c := range plan.Plan.Charges {
			if usage[p][c.Meter] != nil {
				continue
			}
			i := slices.IndexFunc(meters, func(m metering.Meter) bool { return m.Key == c.Meter })
			if i < 0 {
				return errs.NotFoundf("no meter %q", c.Meter)
			}
			u := &pricing.Usage{}
			metering.QueueTotal(b, meters[i], p, u)
			usage[p][c.Meter] = u
		}
		return nil
	}

	b := &pgx.Batch{}
	if len(w.due) > 0 {
		b.Queue(claimQuery, r.closable).Query(func(rows pgx.Rows) error {
			var err error
			claimed, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (claim, error) {
				var c claim
				err := row.Scan(&c.Start, &c.End, &c.invoiced)
				c.Start, c.End = c.Start.UTC(), c.End.UTC()
				return c, err
			})
			return err
		})
		b.Queue(closeLockQuery, w.tenant, r.closable).Query(func(rows pgx.Rows) error {
			locked = rows.Next()
			rows.Close()
			return rows.Err()
		})
	}
	if w.store {
		b.Queue(lockPeriods, w.tenant)
		b.Queue(tenantAndLastQuery, w.tenant).QueryRow(func(row pgx.Row) error {
			var start, end *time.Time
			err := row.Scan(&plan, &tz, &created, &version, &start, &end, &invoicedUntil)
			if start != nil && end != nil {
				last = &pricing.Period{Start: start.UTC(), End: end.UTC()}
			}
			return err
		})
	} else {
		b.Queue(tenantQuery, w.tenant).QueryRow(func(row pgx.Row) error { return row.Scan(&plan, &tz, &created, &version) })
	}
	for _, p := range w.due { // read after the close lock
		if err := queueUsage(b, cached, p); err != nil {
			return out, err
		}
	}

	var (
		failures []failure
		done     int
	)
	err = s.DB.InTenantPipeline(ctx, w.tenant, b, func(conn *pgx.Conn) (*pgx.Batch, error) {
		out.plan = plan
		if !locked {
			claimed = nil // held by another closer
		}
		end := &pgx.Batch{}
		if w.store {
			loc, err := time.LoadLocation(tz)
			if err != nil {
				return nil, fmt.Errorf("time zone %q: %w", tz, err)
			}
			next, _ := chain(TenantInfo{ID: w.tenant, Timezone: tz, CreatedAt: created}, loc, last, invoicedUntil, r.now)
			for _, p := range next {
				end.Queue(insertPeriod, w.tenant, p.Start, p.End, loc.String(), r.now)
				switch {
				case p.End.After(r.closable):
				case locked:
					claimed = append(claimed, claim{Period: p})
				default:
					out.more = append(out.more, p)
				}
			}
		}
		if len(claimed) == 0 {
			return end, nil
		}

		// The plan as the transaction sees it: the run's copy if its version is the
		// stored one, else read again here.
		pl := cached
		seen := ""
		if version != nil {
			seen = *version
		}
		if plan != w.plan || pl.Version != seen {
			pl = &plans.Versioned{}
			pb := &pgx.Batch{}
			plans.QueueGet(pb, plan, pl)
			if err := conn.SendBatch(ctx, pb).Close(); err != nil {
				return nil, err
			}
			if pl.Err != nil {
				pl.Version = seen // a plan that cannot be read is not read again at this version
			}
			r.keep(plan, pl)
		}
		ub := &pgx.Batch{}
		var unpriced map[pricing.Period]error
		for _, c := range claimed {
			if err := queueUsage(ub, pl, c.Period); err != nil {
				if unpriced == nil {
					unpriced = map[pricing.Period]error{}
				}
				unpriced[c.Period] = err
			}
		}
		if ub.Len() > 0 {
			if err := conn.SendBatch(ctx, ub).Close(); err != nil {
				return nil, err
			}
		}

		for _, c := range claimed {
			if c.invoiced {
				end.Queue(markClosed, c.Start, r.now)
				continue
			}
			inv, err := priceWith(pl, c.Period, usage[c.Period], unpriced[c.Period])
			if err != nil {
				failures = append(failures, failure{c.Period, err})
				end.Queue(recordFailure, []time.Time{c.Start}, failureMessage(err), r.now)
				continue
			}
			id, now := uuid.Must(uuid.NewV7()), r.now
			lines, _ := json.Marshal(inv.Lines)
			// No ON CONFLICT: the period was checked for an invoice under its row's lock, and
			// an invoice met here all the same fails the transaction rather than leave an
			// event of an invoice it did not make.
			end.Queue(insertInvoice, w.tenant, id, c.Start, c.End, inv.Currency, inv.Plan, lines, inv.Subtotal, inv.Total, now)
			inv.ID, inv.Status, inv.CreatedAt = &id, "open", &now
			if err := s.Outbox.Queue(ctx, end, w.tenant, "invoice.finalized", inv); err != nil {
				return nil, err
			}
			done++
		}
		return end, nil
	})
	if err != nil {
		return closed{}, err
	}
	out.done, out.failures = done, failures
	return out, nil
}

// priceWith prices a period on plan from its usage, or answers why it cannot.
func priceWith(plan *plans.Versioned, p pricing.Period, usage map[string]*pricing.Usage, unread error) (Invoice, error) {
	if plan.Err != nil {
		return Invoice{}, plan.Err
	}
	if unread != nil {
		return Invoice{}, unread
	}
	u := make(map[string]pricing.Usage, len(usage))
	for m, v := range usage {
		u[m] = *v
	}
	return invoiceOf(plan.Plan, p, u)
}

// maxCloseError bounds the error kept with a period.
const maxCloseError = 1000

func failureMessage(cause error) string {
	msg := cause.Error()
	if len(msg) > maxCloseError {
		msg = strings.ToValidUTF8(msg[:maxCloseError], "")
	}
	return msg
}

func (r *closeRun) logFailure(ctx context.Context, tenantID uuid.UUID, p pricing.Period, err error) {
	r.s.Metrics.closeFailures.Inc()
	r.s.Logger.ErrorContext(ctx, "invoicing: a period could not be finalized; it is retried on the next run",
		slog.String("tenant_id", tenantID.String()), slog.Time("period_start", p.Start), slog.String("error", err.Error()))
}

// failed records a failed transaction against each period it was to finalize (those still
// not finalized), for the operator, and answers how many.
func (r *closeRun) failed(ctx context.Context, tenantID uuid.UUID, ps []pricing.Period, cause error) int {
	starts := make([]time.Time, len(ps))
	for i, p := range ps {
		starts[i] = p.Start
		r.logFailure(ctx, tenantID, p, cause)
	}
	err := r.s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, recordFailure, starts, failureMessage(cause), r.now)
		return err
	})
	if err != nil {
		r.s.Logger.ErrorContext(ctx, "invoicing: recording a failure to finalize periods", slog.String("tenant_id", tenantID.String()), slog.String("error", err.Error()))
	}
	return len(ps)
}

// FailingPeriod is a period the closer has failed to finalize: the operator's view.
type FailingPeriod struct {
	TenantID uuid.UUID `json:"tenant_id"`
	pricing.Period
	Attempts      int       `json:"attempts"`
	LastError     string    `json:"last_error"`
	LastAttemptAt time.Time `json:"last_attempt_at"`
}

// Failing lists the periods, of every tenant, that the closer has failed to finalize, the
// most recent failure first.
func (s *Invoices) Failing(ctx context.Context, limit int) ([]FailingPeriod, error) {
	rows, _ := s.DB.Pool.Query(ctx, "SELECT * FROM app.failing_billing_periods($1)", limit)
	ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (FailingPeriod, error) {
		var p FailingPeriod
		err := r.Scan(&p.TenantID, &p.Start, &p.End, &p.Attempts, &p.LastError, &p.LastAttemptAt)
		p.Start, p.End, p.LastAttemptAt = p.Start.UTC(), p.End.UTC(), p.LastAttemptAt.UTC()
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("invoices.failing: %w", err)
	}
	return ps, nil
}
