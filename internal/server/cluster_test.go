package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/ratelimit"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// redisCluster is a Redis Cluster of three masters and three replicas on loopback, each node
// a redis-server process of the test's own, stopped when the test ends.
type redisCluster struct {
	t     *testing.T
	dir   string
	ports []int
	mu    sync.Mutex
	procs map[int]*exec.Cmd
}

// startRedisCluster starts the cluster and waits until it serves every slot. It needs
// redis-server and redis-cli (Debian's redis-server package, which .ci/run also relies on).
func startRedisCluster(t *testing.T) *redisCluster {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed (apt-get install redis-server): %v", bin, err)
		}
	}
	c := &redisCluster{t: t, dir: t.TempDir(), procs: map[int]*exec.Cmd{}}
	t.Cleanup(c.stop)
	c.ports = freePortPairs(t, 6)
	for _, port := range c.ports {
		cmd := exec.Command("redis-server",
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "no",
			"--cluster-enabled", "yes", "--cluster-config-file", fmt.Sprintf("nodes-%d.conf", port),
			// A master that does not answer for a second is failed over to its replica.
			"--cluster-node-timeout", "1000",
			// A replica may take over however long its link was down (a loaded test machine
			// can be slow to sync it).
			"--cluster-replica-validity-factor", "0",
			"--save", "", "--appendonly", "no", "--dir", c.dir,
			"--logfile", filepath.Join(c.dir, fmt.Sprintf("%d.log", port)))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		c.procs[port] = cmd
		c.mu.Unlock()
	}
	for _, port := range c.ports {
		c.waitFor(fmt.Sprintf("redis-server on %d", port), func() bool {
			return exec.Command("redis-cli", "-p", strconv.Itoa(port), "ping").Run() == nil
		})
	}
	args := []string{"--cluster", "create"}
	for _, a := range c.addrs() {
		args = append(args, a)
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, port := range c.ports {
		c.waitFor("cluster_state:ok on "+strconv.Itoa(port), func() bool { return c.healthy(port) })
		c.waitFor("replication linked on "+strconv.Itoa(port), func() bool {
			out, err := exec.Command("redis-cli", "-p", strconv.Itoa(port), "info", "replication").Output()
			return err == nil && (strings.Contains(string(out), "role:master") || strings.Contains(string(out), "master_link_status:up"))
		})
	}
	return c
}

func (c *redisCluster) addrs() []string {
	out := make([]string, len(c.ports))
	for i, p := range c.ports {
		out[i] = "127.0.0.1:" + strconv.Itoa(p)
	}
	return out
}

// url is the REDIS_URL of the cluster: three of its nodes as seeds.
func (c *redisCluster) url() string {
	a := c.addrs()
	return "redis://" + a[0] + "?addr=" + a[1] + "&addr=" + a[2]
}

func (c *redisCluster) healthy(port int) bool {
	out, err := exec.Command("redis-cli", "-p", strconv.Itoa(port), "cluster", "info").Output()
	return err == nil && strings.Contains(string(out), "cluster_state:ok")
}

// masterOf answers the port of the master that serves key's slot.
func (c *redisCluster) masterOf(port int, key string) int {
	c.t.Helper()
	out, err := exec.Command("redis-cli", "-p", strconv.Itoa(port), "cluster", "keyslot", key).Output()
	if err != nil {
		c.t.Fatal(err)
	}
	slot, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	out, err = exec.Command("redis-cli", "-p", strconv.Itoa(port), "cluster", "nodes").Output()
	if err != nil {
		c.t.Fatal(err)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
			continue
		}
		for _, r := range f[8:] {
			lo, hi, _ := strings.Cut(r, "-")
			l, _ := strconv.Atoi(lo)
			h := l
			if hi != "" {
				h, _ = strconv.Atoi(hi)
			}
			if slot >= l && slot <= h {
				host, p, _ := strings.Cut(strings.Split(f[1], "@")[0], ":")
				_ = host
				n, _ := strconv.Atoi(p)
				return n
			}
		}
	}
	return 0
}

// kill stops one node at once, as a crash would.
func (c *redisCluster) kill(port int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cmd := c.procs[port]; cmd != nil {
		cmd.Process.Kill()
		cmd.Wait()
		delete(c.procs, port)
	}
}

func (c *redisCluster) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for port, cmd := range c.procs {
		cmd.Process.Kill()
		cmd.Wait()
		delete(c.procs, port)
	}
}

// waitFor polls cond for up to 30 s.
func (c *redisCluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			logs, _ := filepath.Glob(filepath.Join(c.dir, "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				c.t.Logf("%s:\n%s", l, b)
			}
			c.t.Fatalf("%s: not within 30 s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePortPairs answers n loopback ports that are free, each with its cluster bus port
// (port+10000) free too.
func freePortPairs(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for tries := 0; len(ports) < n && tries < 1000; tries++ {
		p := 20000 + rand.IntN(25000)
		var ls []net.Listener
		ok := true
		for _, q := range []int{p, p + 10000} {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(q))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			ports = append(ports, p)
		}
	}
	if len(ports) < n {
		t.Fatal("no free ports for the cluster")
	}
	return ports
}

// The service on a real Redis Cluster (3 masters, 3 replicas), REDIS_URL naming seeds with
// addr parameters: the rate limiter decides a request with an API key's limit beside the
// tenant's rate and concurrency cap, all in one script call (one slot: the {t:<tenant>}
// tag), answers the RateLimit headers and a 429, and the deny cache answers repeated
// denials; a flag change made on one replica reaches another through pub/sub. Then the
// master serving the tenant's slot is killed: requests go on being answered (the limiter
// fails open, decisions degraded, never a 500), and once its replica is promoted the limiter
// decides in Redis again.
func TestRedisCluster(t *testing.T) {
	ctx := context.Background()
	cluster := startRedisCluster(t)
	prefix := "test:" + strings.ToLower(uuid.NewString()[:8]) + ":"
	onCluster := func(poll time.Duration) func(*config.Config) {
		return func(c *config.Config) {
			c.RedisURL = cluster.url()
			c.RedisKeyPrefix = prefix // one flag channel for both replicas
			c.RateLimitEnabled = true
			c.AuthRatePerMinute = 1000
			c.FlagsPollInterval = poll
		}
	}
	a := servertest.New(t, onCluster(5*time.Second))
	b := servertest.New(t, onCluster(time.Hour)) // only pub/sub reaches it in time
	if _, ok := a.App.Redis.(*goredis.ClusterClient); !ok {
		t.Fatalf("REDIS_URL %s gave a %T, want a cluster client", cluster.url(), a.App.Redis)
	}

	ten := a.Signup(t, "cluster")
	// The tenant's concurrency cap and the key's rate: both sets of keys under {t:<tenant>}.
	res := a.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/admin/tenants/" + ten.ID, Token: a.PlatformToken(t),
		Body: map[string]any{"rate_limit": map[string]any{"requests_per_second": 100, "burst": 100, "max_concurrent": 5}}})
	res.Want(t, http.StatusOK, "")
	res = a.Do(t, servertest.Request{Method: "POST", Path: "/v1/api-keys", Token: ten.Token, Body: map[string]any{
		"name": "limited", "role": "member",
		"rate_limit": map[string]any{"requests_per_second": 1, "burst": 3}}})
	res.Want(t, http.StatusCreated, "")
	var key servertest.APIKey
	res.Decode(t, &key)
	get := func(s *servertest.Server) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "GET", Path: "/v1/projects", Token: *key.Key})
	}
	first := get(a)
	if first.Status != http.StatusOK || !strings.Contains(first.Header.Get("RateLimit-Policy"), `"key";q=3`) ||
		!strings.Contains(first.Header.Get("RateLimit"), `"key";r=2`) {
		t.Fatalf("first answer: %d, RateLimit-Policy %q, RateLimit %q", first.Status, first.Header.Get("RateLimit-Policy"), first.Header.Get("RateLimit"))
	}
	var denied *servertest.Response
	for range 10 {
		if res := get(a); res.Status == http.StatusTooManyRequests {
			denied = res
			break
		}
	}
	if denied == nil || !strings.Contains(string(denied.Body), `"policy":"key"`) || denied.Header.Get("Retry-After") == "" {
		t.Fatalf("the key's limit never denied on the cluster, or its denial lacks the policy or Retry-After: %+v", denied)
	}
	for range 3 {
		get(a)
	}
	m := metrics(t, a)
	if m["ratelimit_deny_cache_hits_total"] < 1 {
		t.Errorf("no denial answered by the deny cache: %v", m)
	}
	// A script call whose keys span slots is refused (CROSSSLOT): an error, and the decision
	// degraded. (A call slower than the limiter's 50 ms, on a loaded machine, is a timeout.)
	if d := degraded(m, "error"); d != 0 {
		t.Errorf("%v decisions degraded by a Redis error on a healthy cluster: %v", d, m)
	}

	// Flags: PUT on a, served by b through pub/sub.
	flag := "cluster-" + strings.ToLower(uuid.NewString()[:8])
	res = a.Do(t, servertest.Request{Method: "PUT", Path: "/v1/admin/flags/" + flag, Token: a.PlatformToken(t), Body: map[string]any{
		"type": "boolean", "variants": map[string]any{"on": true, "off": false}, "default_variant": "on", "enabled": true}})
	if res.Status != http.StatusCreated {
		t.Fatalf("PUT flag: %d %s", res.Status, res.Body)
	}
	cluster.waitFor("the flag on the other replica", func() bool {
		return b.Do(t, servertest.Request{Method: "GET", Path: "/v1/flags/" + flag, Token: ten.Token}).Status == http.StatusOK
	})

	// The master of the tenant's slot dies.
	tenantID := uuid.MustParse(ten.ID)
	slotKey := "{" + string(ratelimit.Tenant(tenantID)) + "}"
	master := cluster.masterOf(cluster.ports[0], slotKey)
	if master == 0 {
		t.Fatalf("no master serves %s", slotKey)
	}
	cluster.kill(master)
	probe := ratelimit.Limit{Scope: ratelimit.Tenant(tenantID), Policy: "probe", Rate: 1000, Burst: 1000}
	sawDegraded := false
	for i := range 20 {
		if res := get(a); res.Status != http.StatusOK && res.Status != http.StatusTooManyRequests {
			t.Fatalf("request %d with the tenant's master down: %d %s", i, res.Status, res.Body)
		}
		d, err := a.App.Limiter.Allow(ctx, probe)
		if err != nil {
			t.Fatalf("limiter with the master down: %v", err)
		}
		sawDegraded = sawDegraded || (d.Degraded && d.Allowed)
		time.Sleep(20 * time.Millisecond)
	}
	if !sawDegraded {
		t.Error("with the tenant's master down, no decision was made in the replica's own limiter (fail open)")
	}
	live := cluster.ports[0]
	if live == master {
		live = cluster.ports[1]
	}
	cluster.waitFor("a replica promoted for the tenant's slot", func() bool {
		m := cluster.masterOf(live, slotKey)
		return m != 0 && m != master && cluster.healthy(live)
	})
	cluster.waitFor("the limiter deciding in Redis again", func() bool {
		d, err := a.App.Limiter.Allow(ctx, probe)
		return err == nil && !d.Degraded && d.Allowed
	})
	for i := range 5 {
		if res := get(a); res.Status != http.StatusOK && res.Status != http.StatusTooManyRequests {
			t.Fatalf("request %d after the failover: %d %s", i, res.Status, res.Body)
		}
	}
}

// metrics reads s's rate-limit series, by name and labels.
func metrics(t *testing.T, s *servertest.Server) map[string]float64 {
	t.Helper()
	res := s.Do(t, servertest.Request{Method: "GET", Path: "/metrics"})
	out := map[string]float64{}
	for line := range strings.SplitSeq(string(res.Body), "\n") {
		if !strings.HasPrefix(line, "ratelimit_") {
			continue
		}
		name, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			out[name] = f
		}
	}
	return out
}

// degraded answers how many decisions were degraded for reason.
func degraded(m map[string]float64, reason string) float64 {
	var n float64
	for k, v := range m {
		if strings.HasPrefix(k, "ratelimit_degraded_total") && strings.Contains(k, `reason="`+reason+`"`) {
			n += v
		}
	}
	return n
}
