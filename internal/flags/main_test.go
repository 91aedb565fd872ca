package flags

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// redisAddr is the machine's Redis (TEST_REDIS_ADDR overrides it).
func redisAddr() string {
	if a := os.Getenv("TEST_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// uniqueKey names a flag no other test uses: tests share the package database.
func uniqueKey(prefix string) string { return prefix + "-" + randomHex(4) }

// replica is one instance of the service's flag machinery: its own pool, Redis connection,
// snapshot and refresher, as each API replica has.
type replica struct {
	client    *Client
	store     *Store
	admin     *Admin
	refresher *Refresher
}

type replicaOptions struct {
	channel   string        // Redis channel; "" for no Redis at all
	redisAddr string        // default: the machine's Redis
	dbURL     string        // default: the package database as the runtime role
	poll      time.Duration // default: an hour, so only pub/sub carries changes
	source    func(Source) Source
}

func newReplica(t testing.TB, opt replicaOptions) *replica {
	t.Helper()
	if opt.dbURL == "" {
		opt.dbURL = pgtest.RuntimeURL(t)
	}
	if opt.poll == 0 {
		opt.poll = time.Hour
	}
	db, err := postgres.Open(context.Background(), opt.dbURL, postgres.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	store := &Store{DB: db}
	rep := &replica{client: &Client{}, store: store}
	var source Source = store
	if opt.source != nil {
		source = opt.source(store)
	}
	rep.refresher = &Refresher{Client: rep.client, Source: source, Poll: opt.poll, Channel: opt.channel, Logger: quietLogger()}
	if opt.channel != "" {
		if opt.redisAddr == "" {
			opt.redisAddr = redisAddr()
		}
		rdb := goredis.NewClient(&goredis.Options{Addr: opt.redisAddr, DialTimeout: 500 * time.Millisecond})
		t.Cleanup(func() { rdb.Close() })
		rep.refresher.Redis = rdb
	}
	rep.admin = &Admin{DB: db, Events: &events.Outbox{Clock: clock.System{}}, Clock: clock.System{}, Propagator: rep.refresher}
	if err := rep.refresher.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rep.refresher.Stop)
	return rep
}

// quietLogger keeps the refresher's expected warnings (outages are provoked on purpose) out
// of the test output.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// newTenant inserts a tenant (as the owner, which RLS does not restrict) and answers its id.
func newTenant(t testing.TB, plan string) uuid.UUID {
	t.Helper()
	id := uuid.Must(uuid.NewV7())
	slug := "flags-" + randomHex(6)
	_, err := pgtest.Owner(t).Exec(context.Background(),
		"INSERT INTO tenants (id, name, slug, plan_code) VALUES ($1, $2, $3, $4)", id, slug, slug, plan)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// newProxy starts an in-process toxiproxy in front of upstream on a loopback port. Stop cuts
// every connection through it and refuses new ones; Start brings it back on the same port.
func newProxy(t testing.TB, upstream string) *toxiproxy.Proxy {
	t.Helper()
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(server, "proxy-"+randomHex(4), "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// dbViaProxy answers the runtime URL of the package database through a new proxy.
func dbViaProxy(t testing.TB) (string, *toxiproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(pgtest.RuntimeURL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newProxy(t, u.Host)
	u.Host = proxy.Listen
	return u.String(), proxy
}

// eventually polls cond until it holds, and fails the test after deadline. It measures no
// speed: it only bounds how long a broken propagation can hang the test.
func eventually(t testing.TB, deadline time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > deadline {
			t.Fatalf("%s: not within %s", what, deadline)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// flagInput is a PUT body for an on/off flag serving on to pct percent of tenants.
func flagInput(pct int, enabled bool) FlagInput {
	return FlagInput{
		Type:           TypeBoolean,
		Variants:       map[string]json.RawMessage{"on": raw("true"), "off": raw("false")},
		DefaultVariant: "off",
		Enabled:        &enabled,
		Rules:          []Rule{percent(pct)},
	}
}
