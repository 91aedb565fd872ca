package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/bare"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// BenchmarkGetProject measures GET /v1/projects/{id} through the whole service (request id,
// logging, metrics, recovery, JWT authentication, tenant status, InTenantTx) against a bare
// chi + pgx handler that runs the same SELECT with no middleware, in alternating rounds of
// one run. It reports both throughputs and their ratio: the baseline that later middleware
// (rate limit, quota, idempotency) must not wreck. BENCH_LIMITER=1 runs it with the rate
// limiter on (a tenant limit far above the load: every request allowed, each decided in Redis).
func BenchmarkGetProject(b *testing.B) {
	s := servertest.New(b, func(c *config.Config) {
		c.RateLimitEnabled = os.Getenv("BENCH_LIMITER") != ""
		// The bare handler's pool size (pgx's default), as make load gives both the same: with
		// more connections than the bare one the service would drive more PostgreSQL backends
		// at once on the same cores, and measure that rather than its own cost.
		c.DatabaseMaxConns = bareConns
	})
	a := s.Signup(b, "bench")
	// Limits far above the load: every request is allowed, and pays for its decision.
	s.Do(b, servertest.Request{Method: "PATCH", Path: "/v1/admin/tenants/" + a.ID, Token: s.PlatformToken(b),
		Body: map[string]any{"rate_limit": map[string]any{"requests_per_second": 1e6, "burst": 1000000, "max_concurrent": 0}}})
	id := s.Create(b, a.Token, "/v1/projects", map[string]string{"name": "bench", "description": "a project"})

	fullURL := s.URL + "/v1/projects/" + id
	bareURL := bareServer(b) + bare.Path(a.ID, id)

	const (
		workers = 16
		rounds  = 3
		round   = 2 * time.Second
	)
	cpu := newCPUMeter(b)
	var bareRuns, fullRuns []load
	var bareCPU, fullCPU, bareAllocs, fullAllocs []float64
	for range b.N {
		for range rounds {
			at, m := cpu.now(), mallocs()
			bareRuns = append(bareRuns, drive(b, bareURL, "", workers, round))
			bareAllocs = append(bareAllocs, float64(mallocs()-m)/float64(bareRuns[len(bareRuns)-1].n))
			bareCPU = append(bareCPU, cpu.perRequest(at, bareRuns[len(bareRuns)-1]))
			at, m = cpu.now(), mallocs()
			fullRuns = append(fullRuns, drive(b, fullURL, a.Token, workers, round))
			fullAllocs = append(fullAllocs, float64(mallocs()-m)/float64(fullRuns[len(fullRuns)-1].n))
			fullCPU = append(fullCPU, cpu.perRequest(at, fullRuns[len(fullRuns)-1]))
		}
	}
	bareRate, fullRate := median(bareRuns), median(fullRuns)
	b.ReportMetric(0, "ns/op")
	if cpu.ok {
		// CPU per request, this process (client and server) and the test database's
		// PostgreSQL backends together: on a machine other work keeps busy, their ratio says
		// what the throughputs' would be if the rounds had the cores to themselves.
		bc, fc := medianOf(bareCPU), medianOf(fullCPU)
		b.ReportMetric(bc, "bare_cpu_µs/req")
		b.ReportMetric(fc, "full_cpu_µs/req")
		b.ReportMetric(bc/fc, "full/bare_by_cpu")
	}
	// Heap allocations per request in this process, client and server together: the bare
	// rounds' figure is the client's and the baseline's share, the difference the service's.
	// They do not depend on the machine's load.
	b.ReportMetric(medianOf(bareAllocs), "bare_allocs/req")
	b.ReportMetric(medianOf(fullAllocs), "full_allocs/req")
	b.ReportMetric(bareRate.rate, "bare_req/s")
	b.ReportMetric(fullRate.rate, "full_req/s")
	b.ReportMetric(fullRate.rate/bareRate.rate, "full/bare")
	b.ReportMetric(float64(bareRate.p50.Microseconds()), "bare_p50_µs")
	b.ReportMetric(float64(fullRate.p50.Microseconds()), "full_p50_µs")
	b.ReportMetric(float64(fullRate.p99.Microseconds()), "full_p99_µs")
}

// bareConns is the size of the baseline's pool, and of the service's in BenchmarkGetProject:
// pgx's default.
var bareConns = int32(max(4, runtime.NumCPU()))

// bareServer serves the baseline (package bare) from a pool as the owner, and answers its URL.
func bareServer(b *testing.B) string {
	cfg, err := pgxpool.ParseConfig(pgtest.OwnerURL(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = bareConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	ts := httptest.NewServer(bare.Handler(pool))
	b.Cleanup(ts.Close)
	return ts.URL
}

type load struct {
	n        int     // requests answered
	rate     float64 // requests per second
	p50, p99 time.Duration
}

// drive sends GETs of url from workers goroutines for d.
func drive(b *testing.B, url, token string, workers int, d time.Duration) load {
	return driveRequests(b, workers, d, func() *http.Request {
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return req
	})
}

// driveRequests sends requests made by next from workers goroutines for d, and measures
// throughput and latency. Every answer must be a 2xx.
func driveRequests(b *testing.B, workers int, d time.Duration, next func() *http.Request) load {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		wg        sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(deadline) {
				req := next()
				start := time.Now()
				res, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode/100 != 2 {
					b.Errorf("%s %s: %d", req.Method, req.URL, res.StatusCode)
					return
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(latencies)
	if len(latencies) == 0 {
		b.Fatal("no request completed")
	}
	return load{
		n:    len(latencies),
		rate: float64(len(latencies)) / d.Seconds(),
		p50:  latencies[len(latencies)/2],
		p99:  latencies[len(latencies)*99/100],
	}
}

// median picks the run with the median rate.
func median(runs []load) load {
	slices.SortFunc(runs, func(a, b load) int {
		switch {
		case a.rate < b.rate:
			return -1
		case a.rate > b.rate:
			return 1
		}
		return 0
	})
	return runs[len(runs)/2]
}

// BenchmarkCreateProjectIdempotency measures POST /v1/projects with a fresh Idempotency-Key
// on every request against the same without a key, in alternating rounds of one run, and
// reports the throughput ratio and the p50 latency each adds.
func BenchmarkCreateProjectIdempotency(b *testing.B) {
	s := servertest.New(b)
	a := s.Signup(b, "bench-idem")
	url := s.URL + "/v1/projects"
	const (
		workers = 8
		rounds  = 3
		round   = 2 * time.Second
	)
	var plain, keyed []load
	var seq atomic.Int64
	for range b.N {
		for range rounds {
			plain = append(plain, driveRequests(b, workers, round, func() *http.Request {
				return newPost(url, a.Token, "")
			}))
			keyed = append(keyed, driveRequests(b, workers, round, func() *http.Request {
				return newPost(url, a.Token, fmt.Sprintf("bench-%d", seq.Add(1)))
			}))
		}
	}
	p, k := median(plain), median(keyed)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(p.rate, "plain_req/s")
	b.ReportMetric(k.rate, "keyed_req/s")
	b.ReportMetric(k.rate/p.rate, "keyed/plain")
	b.ReportMetric(float64((k.p50 - p.p50).Microseconds()), "added_p50_µs")
}

func newPost(url, token, key string) *http.Request {
	req, _ := http.NewRequest("POST", url, strings.NewReader(`{"name":"bench","description":"a project"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	return req
}

// mallocs is the number of heap objects this process has allocated so far.
func mallocs() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.Mallocs
}

func medianOf(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// cpuMeter reads the CPU time of this process and of the PostgreSQL backends serving the
// test database (from /proc: only where PostgreSQL runs on this machine; ok is false if not).
type cpuMeter struct {
	b     *testing.B
	owner *pgx.Conn
	ok    bool
}

type cpuAt struct {
	self time.Duration
	pg   map[int]time.Duration
}

func newCPUMeter(b *testing.B) *cpuMeter {
	m := &cpuMeter{b: b, owner: pgtest.Owner(b), ok: true}
	m.now()
	return m
}

func (m *cpuMeter) now() cpuAt {
	c := cpuAt{self: selfCPU(), pg: map[int]time.Duration{}}
	rows, err := m.owner.Query(context.Background(),
		"SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
	if err != nil {
		m.b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		m.b.Fatal(err)
	}
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			m.ok = false
			continue
		}
		// utime and stime are the 12th and 13th fields after the command's parenthesis.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 13 {
			m.ok = false
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		c.pg[int(pid)] = time.Duration(u+s) * 10 * time.Millisecond // USER_HZ is 100 on Linux
	}
	return c
}

// perRequest answers the CPU µs spent per request of l since start.
func (m *cpuMeter) perRequest(start cpuAt, l load) float64 {
	end := m.now()
	spent := end.self - start.self
	for pid, t := range end.pg {
		spent += t - start.pg[pid]
	}
	return float64(spent.Microseconds()) / float64(max(l.n, 1))
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGetProjectHandler is BenchmarkGetProject's request through the handlers in
// process, no network and no client: the service's (full, the rate limiter on as with
// BENCH_LIMITER=1) and the baseline's (bare), as sub-benchmarks. Their allocations per
// request are exact and do not depend on the machine's load, and cpu_µs/op (this process's
// CPU per request) and pg_cpu_µs/op (PostgreSQL's) depend on it less than ns/op; their
// differences are what the service's middleware and read add.
func BenchmarkGetProjectHandler(b *testing.B) {
	s := servertest.New(b, func(c *config.Config) { c.RateLimitEnabled = true })
	a := s.Signup(b, "bench")
	s.Do(b, servertest.Request{Method: "PATCH", Path: "/v1/admin/tenants/" + a.ID, Token: s.PlatformToken(b),
		Body: map[string]any{"rate_limit": map[string]any{"requests_per_second": 1e6, "burst": 1000000, "max_concurrent": 0}}})
	id := s.Create(b, a.Token, "/v1/projects", map[string]string{"name": "bench", "description": "a project"})
	pool, err := pgxpool.New(context.Background(), pgtest.OwnerURL(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	cpu := newCPUMeter(b)
	for _, c := range []struct {
		name, path, token string
		h                 http.Handler
	}{
		{"bare", bare.Path(a.ID, id), "", bare.Handler(pool)},
		{"full", "/v1/projects/" + id, "Bearer " + a.Token, s.App.Handler()},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			start := cpu.now()
			defer func() {
				// This process's CPU per request, and the test database's PostgreSQL backends'
				// (Redis's is in neither): steadier than ns/op on a machine other work keeps
				// busy.
				end := cpu.now()
				b.ReportMetric(float64((end.self-start.self).Microseconds())/float64(b.N), "cpu_µs/op")
				if cpu.ok {
					var pg time.Duration
					for pid, t := range end.pg {
						pg += t - start.pg[pid]
					}
					b.ReportMetric(float64(pg.Microseconds())/float64(b.N), "pg_cpu_µs/op")
				}
			}()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest("GET", c.path, nil)
					if c.token != "" {
						req.Header.Set("Authorization", c.token)
					}
					w := httptest.NewRecorder()
					c.h.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Errorf("GET %s: %d %s", c.path, w.Code, w.Body)
						return
					}
				}
			})
		})
	}
}
