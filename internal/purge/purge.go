// Package purge deletes the data of tenants whose deletion grace period has passed: every
// row of the tenant in every table that has a tenant_id column, discovered from the catalog
// (so a table added later is purged without a line here), in batches that each hold their
// locks briefly; its Redis keys; its Stripe customer. Invoices, payments and refunds are
// kept for the books, with personal data removed, under a tombstone tenant row. A purge is
// resumable: every batch commits, and the tenant stays due until the last step.
package purge

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Kept are the tables whose rows of a purged tenant stay: what accounting law makes us keep
// (invoices, and the payments and refunds that settled them). The tenant's row stays too, as
// a tombstone (status deleted, no name, no slug). app.purge_tenant_rows refuses these.
var Kept = []string{"invoices", "payments", "refunds"}

// Customers deletes a tenant's Stripe customer.
type Customers interface {
	DeleteCustomer(ctx context.Context, id string) error
}

// Purger runs purges.
type Purger struct {
	DB          *postgres.DB
	Redis       goredis.UniversalClient
	RedisPrefix string
	Stripe      Customers // nil: no Stripe configured, nothing to delete there
	Outbox      *events.Outbox
	Clock       clock.Clock
	Logger      *slog.Logger
	Batch       int // rows per statement (5,000 if 0)
	Metrics     *Metrics
	// AfterBatch, if set, is called after each batch; tests stop a purge halfway with it.
	AfterBatch func(table string, n int) error
}

// Metrics count what purges deleted.
type Metrics struct {
	Rows    *prometheus.CounterVec
	Tenants prometheus.Counter
}

// NewMetrics registers the purge's metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenant_purge_rows_deleted_total", Help: "Rows of deleted tenants purged, by table.",
		}, []string{"table"}),
		Tenants: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tenants_purged_total", Help: "Tenants whose purge finished.",
		}),
	}
	reg.MustRegister(m.Rows, m.Tenants)
	return m
}

// Run purges every tenant whose grace has passed; it is a job. Answers the rows deleted.
func (p *Purger) Run(ctx context.Context) (int, error) {
	rows, _ := p.DB.Pool.Query(ctx, "SELECT app.tenants_due_for_purge($1, 100)", p.Clock.Now())
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return 0, fmt.Errorf("purge.run: %w", err)
	}
	total := 0
	for _, id := range ids {
		n, err := p.Purge(ctx, id)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Start purges id in the background, for an operator's purge=now; a failure is logged and
// the job finishes it.
func (p *Purger) Start(id uuid.UUID) {
	go func() {
		ctx := context.Background()
		if _, err := p.Purge(ctx, id); err != nil && p.Logger != nil {
			p.Logger.ErrorContext(ctx, "purge failed; the purge job resumes it", slog.String("tenant", id.String()), slog.String("error", err.Error()))
		}
	}()
}

// Purge deletes a due tenant's data and answers the rows deleted. Called again after a
// failure or a crash, it goes on where the last committed batch left off.
func (p *Purger) Purge(ctx context.Context, id uuid.UUID) (int, error) {
	now := p.Clock.Now()
	if err := p.deleteCustomer(ctx, id); err != nil {
		return 0, err
	}
	tables, err := Tables(ctx, p.DB.Pool)
	if err != nil {
		return 0, err
	}
	batch := p.Batch
	if batch <= 0 {
		batch = 5000
	}
	total := 0
	for _, table := range tables {
		for {
			var n int
			err := p.DB.Pool.QueryRow(ctx, "SELECT app.purge_tenant_rows($1, $2, $3, $4)", id, table, now, batch).Scan(&n)
			if err != nil {
				return total, fmt.Errorf("purge %s: %s: %w", id, table, err)
			}
			total += n
			if p.Metrics != nil && n > 0 {
				p.Metrics.Rows.WithLabelValues(table).Add(float64(n))
			}
			if p.AfterBatch != nil {
				if err := p.AfterBatch(table, n); err != nil {
					return total, err
				}
			}
			if n < batch {
				break
			}
		}
	}
	if err := p.deleteRedisKeys(ctx, id); err != nil {
		return total, err
	}
	err = p.DB.InTenantTx(ctx, postgres.PlatformTenant, func(tx pgx.Tx) error {
		var finished bool
		if err := tx.QueryRow(ctx, "SELECT app.finish_tenant_purge($1, $2)", id, now).Scan(&finished); err != nil || !finished {
			return err
		}
		// A platform event: the tenant's id and when, nothing that names a person.
		return p.Outbox.Append(ctx, tx, postgres.PlatformTenant, "tenant.deleted", map[string]any{"tenant_id": id, "deleted_at": now})
	})
	if err != nil {
		return total, fmt.Errorf("purge %s: finish: %w", id, err)
	}
	if p.Metrics != nil {
		p.Metrics.Tenants.Inc()
	}
	return total, nil
}

// deleteCustomer deletes the tenant's Stripe customer before its billing_customers row goes,
// so a purge stopped in between deletes it again (a missing customer counts as deleted).
func (p *Purger) deleteCustomer(ctx context.Context, id uuid.UUID) error {
	if p.Stripe == nil {
		return nil
	}
	var cus string
	b := &pgx.Batch{}
	b.Queue("SELECT stripe_customer_id FROM billing_customers WHERE tenant_id = $1", id).QueryRow(func(row pgx.Row) error {
		if err := row.Scan(&cus); err != nil && !postgres.IsNoRows(err) {
			return err
		}
		return nil
	})
	if err := p.DB.InTenantRead(ctx, id, b); err != nil {
		return fmt.Errorf("purge %s: stripe customer: %w", id, err)
	}
	if cus == "" {
		return nil
	}
	if err := p.Stripe.DeleteCustomer(ctx, cus); err != nil {
		return fmt.Errorf("purge %s: delete stripe customer: %w", id, err)
	}
	return nil
}

// deleteRedisKeys deletes the tenant's keys: every key of the tenant's hash tag, {t:<id>}
// (rate limits, leases, concurrency claims). SCAN sees one node's keys, so on Redis Cluster
// every master is scanned (the tag puts them all on one, but which one is the cluster's business).
func (p *Purger) deleteRedisKeys(ctx context.Context, id uuid.UUID) error {
	if p.Redis == nil {
		return nil
	}
	match := p.RedisPrefix + "{t:" + id.String() + "}*"
	scan := func(ctx context.Context, c goredis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, match, 500).Result()
			if err != nil {
				return fmt.Errorf("purge %s: redis scan: %w", id, err)
			}
			if len(keys) > 0 {
				if err := c.Del(ctx, keys...).Err(); err != nil {
					return fmt.Errorf("purge %s: redis del: %w", id, err)
				}
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	if cluster, ok := p.Redis.(*goredis.ClusterClient); ok {
		return cluster.ForEachMaster(ctx, func(ctx context.Context, node *goredis.Client) error {
			return scan(ctx, node)
		})
	}
	return scan(ctx, p.Redis)
}

// Tables answers the tables the purge empties of a tenant, from the catalog: every table of
// public with a tenant_id column (partitioned tables as their parent), but the kept ones,
// ordered so that a table comes before the tables its foreign keys point at.
func Tables(ctx context.Context, q postgres.Querier) ([]string, error) {
	rows, _ := q.Query(ctx, `
		SELECT c.relname FROM pg_class c
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		  JOIN pg_attribute a ON a.attrelid = c.oid
		 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
		   AND a.attname = 'tenant_id' AND NOT a.attisdropped
		 ORDER BY c.relname`)
	all, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("purge.tables: %w", err)
	}
	rows, _ = q.Query(ctx, `
		SELECT DISTINCT cc.relname, pc.relname FROM pg_constraint k
		  JOIN pg_class cc ON cc.oid = k.conrelid
		  JOIN pg_class pc ON pc.oid = k.confrelid
		  JOIN pg_namespace n ON n.oid = cc.relnamespace
		 WHERE k.contype = 'f' AND n.nspname = 'public' AND cc.oid <> pc.oid`)
	type edge struct{ child, parent string }
	edges, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (edge, error) {
		var e edge
		return e, r.Scan(&e.child, &e.parent)
	})
	if err != nil {
		return nil, fmt.Errorf("purge.tables: %w", err)
	}
	// Depth-first: a table is placed after every table that references it.
	var out []string
	state := map[string]int{} // 1 visiting, 2 placed
	var visit func(t string)
	visit = func(t string) {
		if state[t] != 0 {
			return
		}
		state[t] = 1
		for _, e := range edges {
			if e.parent == t {
				visit(e.child)
			}
		}
		state[t] = 2
		if slices.Contains(all, t) && !slices.Contains(Kept, t) {
			out = append(out, t)
		}
	}
	for _, t := range all {
		visit(t)
	}
	return out, nil
}
