package ratelimit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/saasbase/saasbase/internal/ratelimit"
)

// redisAddr is the development machine's shared Redis. Tests never stop it: each uses its
// own key prefix, and faults go through an in-process toxiproxy.
const redisAddr = "127.0.0.1:6379"

// newClient connects to addr; setup may change the options.
func newClient(tb testing.TB, addr string, setup ...func(*redis.Options)) *redis.Client {
	tb.Helper()
	opts := &redis.Options{Addr: addr, ContextTimeoutEnabled: true}
	for _, f := range setup {
		f(opts)
	}
	c := redis.NewClient(opts)
	tb.Cleanup(func() { c.Close() })
	return c
}

// newPrefix is a key prefix of the test's own, whose keys are deleted when it ends.
func newPrefix(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "ratelimit-test:" + hex.EncodeToString(b) + ":"
	c := newClient(tb, redisAddr)
	if err := c.Ping(context.Background()).Err(); err != nil {
		tb.Fatalf("Redis at %s: %v", redisAddr, err)
	}
	tb.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return prefix
}

// newLimiter is a limiter on client under prefix, with its own metrics registry. Unless
// the test sets one, the timeout is a second: under the race detector, on a busy two-core
// machine, 50 ms is sometimes missed, and a test of accuracy must not fall back to the
// replica's own limiter (TestRedisFaults holds the 50 ms).
func newLimiter(tb testing.TB, client redis.UniversalClient, prefix string, opts ratelimit.Options) (*ratelimit.Limiter, *prometheus.Registry) {
	tb.Helper()
	reg := prometheus.NewRegistry()
	opts.Prefix, opts.Registerer = prefix, reg
	if opts.Timeout == 0 {
		opts.Timeout = time.Second
	}
	l, err := ratelimit.New(client, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return l, reg
}

// tenantLimit is a "tenant" policy limit of a fresh tenant.
func tenantLimit(rate float64, burst int) ratelimit.Limit {
	return ratelimit.Limit{Scope: ratelimit.Tenant(uuid.New()), Policy: "tenant", Rate: rate, Burst: burst}
}

// perHour is a rate of n requests an hour, in requests per second.
func perHour(n int) float64 { return float64(n) / 3600 }

// counter counts the commands a client sends, to see what reaches Redis.
type counter struct{ n atomic.Int64 }

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// countCalls installs a counter on client.
func countCalls(client *redis.Client) *counter {
	c := &counter{}
	client.AddHook(c)
	return c
}

// newProxy starts an in-process toxiproxy in front of the shared Redis.
func newProxy(tb testing.TB) *toxiproxy.Proxy {
	tb.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "redis", "127.0.0.1:0", redisAddr)
	if err := p.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Stop)
	if _, _, err := net.SplitHostPort(p.Listen); err != nil {
		tb.Fatal(err)
	}
	return p
}

// stall delays every answer through p by d, until the returned function is called.
func stall(tb testing.TB, p *toxiproxy.Proxy, d time.Duration) (restore func()) {
	tb.Helper()
	body := `{"name":"stall","type":"latency","stream":"downstream","attributes":{"latency":` +
		itoa(d.Milliseconds()) + `}}`
	if _, err := p.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
		tb.Fatal(err)
	}
	return func() {
		if err := p.Toxics.RemoveToxic(context.Background(), "stall"); err != nil {
			tb.Fatal(err)
		}
	}
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		if n /= 10; n == 0 {
			return string(b[i:])
		}
	}
}

// metric reads a counter or gauge of reg with the given labels; 0 when absent.
func metric(tb testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	tb.Helper()
	families, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, labels) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
