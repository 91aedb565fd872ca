package postgres

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// PoolCollector exports the pool's statistics, read from pgxpool at each scrape, so that an
// operator sees the pool saturate (every connection acquired, requests waiting for one)
// before requests time out.
type PoolCollector struct {
	pool *pgxpool.Pool

	max, total, acquired, idle *prometheus.Desc
	acquires, emptyAcquires    *prometheus.Desc
	canceled, emptyWait        *prometheus.Desc
}

// NewPoolCollector describes db's pool; register it on a registry.
func NewPoolCollector(db *DB) *PoolCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &PoolCollector{
		pool:          db.Pool,
		max:           d("db_pool_max_conns", "The pool's size (DATABASE_MAX_CONNS)."),
		total:         d("db_pool_total_conns", "Connections open, acquired or idle or being opened."),
		acquired:      d("db_pool_acquired_conns", "Connections in use by a request or job."),
		idle:          d("db_pool_idle_conns", "Connections open and free."),
		acquires:      d("db_pool_acquires_total", "Connections acquired from the pool."),
		emptyAcquires: d("db_pool_empty_acquires_total", "Acquires that found no idle connection and waited for one."),
		canceled:      d("db_pool_canceled_acquires_total", "Acquires given up by their caller (deadline, cancellation) while waiting."),
		emptyWait:     d("db_pool_empty_acquire_wait_seconds_total", "Time spent waiting by acquires that found no idle connection."),
	}
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.max, c.total, c.acquired, c.idle, c.acquires, c.emptyAcquires, c.canceled, c.emptyWait} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(c.max, float64(s.MaxConns()))
	gauge(c.total, float64(s.TotalConns()))
	gauge(c.acquired, float64(s.AcquiredConns()))
	gauge(c.idle, float64(s.IdleConns()))
	counter(c.acquires, float64(s.AcquireCount()))
	counter(c.emptyAcquires, float64(s.EmptyAcquireCount()))
	counter(c.canceled, float64(s.CanceledAcquireCount()))
	counter(c.emptyWait, s.EmptyAcquireWaitTime().Seconds())
}
