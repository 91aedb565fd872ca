package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
)

// TestPoolCollector: the pool metrics say what the pool holds at the scrape: its size, the
// connections in use, and the time acquires spent waiting when none was free (what the
// PostgresPoolSaturated and PostgresPoolWaiting alerts read).
func TestPoolCollector(t *testing.T) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, pgtest.RuntimeURL(t), postgres.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(postgres.NewPoolCollector(db))
	value := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				m := mf.GetMetric()[0]
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
		t.Fatalf("no %s", name)
		return 0
	}

	a, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := value("db_pool_acquired_conns"); got != 2 {
		t.Errorf("db_pool_acquired_conns %v with two acquired, want 2", got)
	}
	if got := value("db_pool_max_conns"); got != 2 {
		t.Errorf("db_pool_max_conns %v, want 2", got)
	}
	// A third acquire waits until one is released.
	go func() {
		time.Sleep(100 * time.Millisecond)
		a.Release()
	}()
	c, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Release()
	b.Release()
	if got := value("db_pool_empty_acquire_wait_seconds_total"); got < 0.05 {
		t.Errorf("db_pool_empty_acquire_wait_seconds_total %v after an acquire waited ~100 ms", got)
	}
	if got := value("db_pool_acquired_conns"); got != 0 {
		t.Errorf("db_pool_acquired_conns %v with none acquired, want 0", got)
	}
	if mfs, _ := reg.Gather(); len(mfs) != 8 {
		t.Errorf("%d pool metrics, want 8", len(mfs))
	}
}
