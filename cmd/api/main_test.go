package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/platform/proctest"
)

// The tests run the command as a process of its own: the test binary re-executes itself
// with runMainEnv set, and then behaves as `api`.
const runMainEnv = "SAASBASE_CMDTEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	pgtest.Main(m) // the chaos test's database; the others create their own, to migrate it

}

// configNames are the variables the command reads; the parent's values never reach a child.
var configNames = []string{
	"APP_ENV", "HTTP_ADDR", "METRICS_ADDR", "DATABASE_URL", "APP_DATABASE_URL", "DATABASE_MAX_CONNS",
	"DATABASE_STATEMENT_TIMEOUT", "REDIS_URL", "REDIS_KEY_PREFIX", "JWT_SIGNING_KEY",
	"JWT_PREVIOUS_PUBLIC_KEYS", "JWT_ISSUER", "JWT_AUDIENCE", "JWT_MAX_TOKEN_TTL", "ACCESS_TOKEN_TTL", "REFRESH_TOKEN_TTL",
	"STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_URL", "KAFKA_BROKERS", "KAFKA_TOPIC",
	"TRUSTED_PROXIES", "CORS_ALLOWED_ORIGINS", "AUTH_RATE_LIMIT_PER_MINUTE",
	"WEBHOOKS_ALLOW_PRIVATE_NETWORKS", "WEBHOOK_SECRET_KEY", "HTTP_READ_TIMEOUT", "HTTP_WRITE_TIMEOUT", "SHUTDOWN_TIMEOUT",
	"SHUTDOWN_DRAIN_DELAY", "LOG_LEVEL",
}

// command prepares `api args...` with env on top of the parent's environment minus the
// configuration.
func command(ctx context.Context, env map[string]string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !containsString(configNames, name) && name != runMainEnv {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, runMainEnv+"=1")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

type result struct {
	code           int
	stdout, stderr string
}

// runAPI runs `api args...` to its end.
func runAPI(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := command(ctx, env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("api %s: %v", strings.Join(args, " "), err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

func adminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// freshDatabase creates an empty database, dropped when the test ends, and answers its
// superuser URL.
func freshDatabase(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, adminURL())
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	defer admin.Close(ctx)
	name := "saasbase_cmdtest_" + randomHex(4)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, adminURL())
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(adminURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// service is a running `api serve`.
type service struct {
	cmd    *exec.Cmd
	url    string
	env    map[string]string
	output *lockedBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's answer, once done is closed
}

type lockedBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newLockedBuffer() *lockedBuffer { return &lockedBuffer{mu: make(chan struct{}, 1)} }

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

// migratedService creates a database, migrates it with `api migrate up` and starts
// `api serve` on it with the given variables over the defaults below, waiting until /readyz
// answers 200.
func migratedService(t *testing.T, override map[string]string) *service {
	t.Helper()
	env := map[string]string{
		"DATABASE_URL":         freshDatabase(t),
		"HTTP_ADDR":            proctest.FreeAddr(t),
		"METRICS_ADDR":         proctest.FreeAddr(t), // not production's :9090, which runs side by side would share
		"REDIS_KEY_PREFIX":     "cmdtest:" + randomHex(4) + ":",
		"SHUTDOWN_DRAIN_DELAY": "1500ms",
		"LOG_LEVEL":            "warn",
	}
	maps.Copy(env, override)
	if r := runAPI(t, env, "migrate", "up"); r.code != 0 {
		t.Fatalf("api migrate up: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	return startService(t, env)
}

// startService starts `api serve` with env, which names its HTTP_ADDR, and waits until
// /readyz answers 200. The process is killed when the test ends, if it still runs.
func startService(t *testing.T, env map[string]string) *service {
	t.Helper()
	s := &service{url: "http://" + env["HTTP_ADDR"], env: env, output: newLockedBuffer(), done: make(chan struct{})}
	s.cmd = command(context.Background(), env, "serve")
	s.cmd.Stdout, s.cmd.Stderr = s.output, s.output
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("api serve output:\n%s", s.output.String())
		}
	})

	poll(t, 30*time.Second, "api serve answers /readyz 200", func() (bool, string) {
		select {
		case <-s.done:
			t.Fatalf("api serve exited: %v\n%s", s.err, s.output.String())
		default:
		}
		status, body, err := get(s.url+"/readyz", "")
		return err == nil && status == http.StatusOK, fmt.Sprint(status, " ", body, " ", err)
	})
	return s
}

// terminate sends SIGTERM and waits for the process to end, failing the test if it takes
// longer than within; it answers how the process ended (nil: exit status 0).
func (s *service) terminate(t *testing.T, within time.Duration) error {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
		return s.err
	case <-time.After(within):
		t.Fatalf("api serve did not stop within %v of SIGTERM", within)
		return nil
	}
}

// poll calls check until it reports done, failing after deadline.
func poll(t *testing.T, deadline time.Duration, what string, check func() (bool, string)) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		ok, last := check()
		if ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s; last: %s", what, deadline, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// client opens a new connection for every request, so none is ever reused across a
// shutdown.
var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func get(target, token string) (int, string, error) {
	req, err := http.NewRequest("GET", target, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, string(body), err
}

func postJSON(t *testing.T, target, token string, body any) (int, []byte) {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", target, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, out
}

type signedUp struct {
	Tenant      struct{ ID, Slug string }
	User        struct{ ID string }
	AccessToken string `json:"access_token"`
}

func signup(t *testing.T, s *service) signedUp {
	t.Helper()
	slug := "cmd-" + randomHex(4)
	status, body := postJSON(t, s.url+"/v1/signup", "", map[string]string{
		"tenant_name": "Cmd", "tenant_slug": slug, "email": "owner@" + slug + ".example.com", "password": "correct horse battery staple",
	})
	if status != http.StatusCreated {
		t.Fatalf("signup: %d %s", status, body)
	}
	var out signedUp
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestServeDrainsOnSIGTERM: SIGTERM during a slow request: it completes, readyz was 503,
// exit status 0.
func TestServeDrainsOnSIGTERM(t *testing.T) {
	s := migratedService(t, nil)
	tn := signup(t, s)

	// A project whose body arrives slowly, in small pieces, over about three seconds.
	body := `{"name": "slow project", "description": "its body arrives in small pieces while the server drains"}`
	pr, pw := io.Pipe()
	req, err := http.NewRequest("POST", s.url+"/v1/projects", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tn.AccessToken)
	type answer struct {
		status int
		body   []byte
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		res, err := client.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		answered <- answer{status: res.StatusCode, body: b, err: err}
	}()
	write := func(piece string) {
		t.Helper()
		if _, err := pw.Write([]byte(piece)); err != nil {
			t.Fatalf("writing the slow body: %v", err)
		}
	}
	const first = 8
	write(body[:first]) // returns once the client has taken it: the request is on its way

	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	poll(t, 5*time.Second, "/readyz answers 503 draining after SIGTERM", func() (bool, string) {
		status, b, err := get(s.url+"/readyz", "")
		if err != nil {
			return false, err.Error()
		}
		var r struct{ Status string }
		json.Unmarshal([]byte(b), &r)
		return status == http.StatusServiceUnavailable && r.Status == "draining", fmt.Sprint(status, " ", b)
	})

	// The rest of the body, spread so that it is still arriving after the drain delay
	// (1.5 s), when the server is shutting down: 15 pauses of 200 ms are at least 3 s, since a
	// sleep never ends early, so no clock reading is needed to know it.
	rest := body[first:]
	const pieces = 15
	for i := range pieces {
		time.Sleep(200 * time.Millisecond)
		lo, hi := i*len(rest)/pieces, (i+1)*len(rest)/pieces
		write(rest[lo:hi])
	}
	pw.Close()

	select {
	case a := <-answered:
		if a.err != nil {
			t.Fatalf("the slow request failed: %v", a.err)
		}
		if a.status != http.StatusCreated {
			t.Fatalf("the slow request: %d %s, want 201", a.status, a.body)
		}
		var p struct{ ID, Name string }
		if err := json.Unmarshal(a.body, &p); err != nil || p.Name != "slow project" || p.ID == "" {
			t.Fatalf("the slow request answered %s", a.body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the slow request got no answer")
	}

	select {
	case <-s.done:
		if s.err != nil {
			t.Fatalf("api serve exited with %v, want status 0\n%s", s.err, s.output.String())
		}
		if code := s.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("exit status %d, want 0", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("api serve did not exit after SIGTERM")
	}
	// Stopped means stopped: nothing listens any more.
	if _, _, err := get(s.url+"/livez", ""); err == nil {
		t.Fatal("the stopped server still answers")
	}
}

// TestMigrateStatusAndToken: `api migrate status` lists the migration as applied, and
// `api token` mints a JWT the running service accepts.
func TestMigrateStatusAndToken(t *testing.T) {
	s := migratedService(t, nil)
	tn := signup(t, s)

	r := runAPI(t, s.env, "migrate", "status")
	if r.code != 0 {
		t.Fatalf("api migrate status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	found := false
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.Contains(line, "00001_foundation.sql") {
			found = true
			if !strings.Contains(line, "applied") || strings.Contains(line, "pending") {
				t.Errorf("migrate status: %q, want it applied", line)
			}
		}
	}
	if !found {
		t.Fatalf("migrate status does not list 00001_foundation.sql:\n%s", r.stdout)
	}

	for _, tenantArg := range []string{tn.Tenant.Slug, tn.Tenant.ID} {
		r = runAPI(t, s.env, "token", "--tenant", tenantArg, "--role", "member")
		if r.code != 0 {
			t.Fatalf("api token --tenant %s: exit %d\n%s%s", tenantArg, r.code, r.stdout, r.stderr)
		}
		token := strings.TrimSpace(r.stdout)
		if strings.Count(token, ".") != 2 || strings.ContainsAny(token, " \n") {
			t.Fatalf("api token printed %q, want a JWT alone", r.stdout)
		}
		status, body, err := get(s.url+"/v1/me", token)
		if err != nil || status != http.StatusOK {
			t.Fatalf("/v1/me with the CLI token: %d %s %v", status, body, err)
		}
		var me struct{ ID, Role string }
		json.Unmarshal([]byte(body), &me)
		if me.Role != "member" || me.ID != tn.User.ID {
			t.Fatalf("/v1/me with the CLI token = %s, want the owner's id with role member", body)
		}
		// A member token does not open admin routes.
		if status, body, _ := get(s.url+"/v1/users", token); status != http.StatusForbidden {
			t.Fatalf("GET /v1/users with a member CLI token: %d %s", status, body)
		}
	}

	r = runAPI(t, s.env, "token", "--platform-admin")
	if r.code != 0 {
		t.Fatalf("api token --platform-admin: exit %d\n%s", r.code, r.stderr)
	}
	if status, body, _ := get(s.url+"/v1/admin/tenants", strings.TrimSpace(r.stdout)); status != http.StatusOK {
		t.Fatalf("/v1/admin/tenants with the CLI operator token: %d %s", status, body)
	}

	r = runAPI(t, s.env, "token", "--tenant", "no-such-tenant", "--role", "member")
	if r.code == 0 || !strings.Contains(r.stderr, "no-such-tenant") {
		t.Fatalf("api token for a missing tenant: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runAPI(t, s.env, "token", "--tenant", tn.Tenant.Slug, "--role", "superuser")
	if r.code == 0 || strings.TrimSpace(r.stdout) != "" {
		t.Fatalf("api token --role superuser: exit %d, stdout %q", r.code, r.stdout)
	}

	// --ttl is capped by JWT_MAX_TOKEN_TTL (24h by default): beyond it the command mints
	// nothing and names the cap; within it, the service accepts the token.
	for _, args := range [][]string{{"--tenant", tn.Tenant.Slug}, {"--platform-admin"}} {
		r = runAPI(t, s.env, append([]string{"token", "--ttl", "25h"}, args...)...)
		if r.code == 0 || strings.TrimSpace(r.stdout) != "" || !strings.Contains(r.stderr, "JWT_MAX_TOKEN_TTL") || !strings.Contains(r.stderr, "24h") {
			t.Fatalf("api token --ttl 25h %s: exit %d, stdout %q, stderr %q; want a refusal naming JWT_MAX_TOKEN_TTL (24h)",
				strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
	r = runAPI(t, s.env, "token", "--tenant", tn.Tenant.Slug, "--ttl", "23h")
	if r.code != 0 {
		t.Fatalf("api token --ttl 23h: exit %d\n%s", r.code, r.stderr)
	}
	if status, body, _ := get(s.url+"/v1/me", strings.TrimSpace(r.stdout)); status != http.StatusOK {
		t.Fatalf("/v1/me with a 23h CLI token: %d %s", status, body)
	}
}

// TestBadConfigurationExits: the command refuses to run on a bad environment and names the
// variable.
func TestBadConfigurationExits(t *testing.T) {
	key := "c2VjcmV0LXNlZWQtb2YtdGhpcnR5LXR3by1ieXRlcyE=" // 32 bytes
	db := "postgres://postgres@127.0.0.1:5432/saasbase_cmdtest_unused?sslmode=disable"
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"production without a signing key", map[string]string{"APP_ENV": "production", "DATABASE_URL": db, "HTTP_ADDR": proctest.FreeAddr(t)}, nil, []string{"JWT_SIGNING_KEY"}},
		{"production with the development key", map[string]string{"APP_ENV": "production", "DATABASE_URL": db, "JWT_SIGNING_KEY": "ZGV2ZWxvcG1lbnQtb25seS1zZWVkLWRvLW5vdC11c2U="}, nil, []string{"JWT_SIGNING_KEY"}},
		{"production without a database", map[string]string{"APP_ENV": "production", "JWT_SIGNING_KEY": key}, nil, []string{"DATABASE_URL"}},
		{"production without a webhook secret key", map[string]string{"APP_ENV": "production", "DATABASE_URL": db, "JWT_SIGNING_KEY": key}, nil, []string{"WEBHOOK_SECRET_KEY"}},
		{"several bad values", map[string]string{"DATABASE_MAX_CONNS": "lots", "ACCESS_TOKEN_TTL": "1h", "LOG_LEVEL": "chatty"}, []string{"migrate", "status"},
			[]string{"DATABASE_MAX_CONNS", "ACCESS_TOKEN_TTL", "LOG_LEVEL"}},
		{"an unknown command", map[string]string{}, []string{"frobnicate"}, []string{"frobnicate"}},
		{"a sampler not known", map[string]string{"DATABASE_URL": db, "HTTP_ADDR": proctest.FreeAddr(t),
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_SAMPLER": "sometimes"}, nil, []string{"OTEL_TRACES_SAMPLER"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runAPI(t, c.env, c.args...)
			if r.code == 0 {
				t.Fatalf("exit status 0, want non-zero; stdout %q", r.stdout)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not name %s:\n%s", w, r.stderr)
				}
			}
		})
	}
}

// TestRequestsCountedWithoutJobs: a replica with JOBS_ENABLED=false still writes the API
// request counts it holds in memory, the last of them when it stops on SIGTERM.
func TestRequestsCountedWithoutJobs(t *testing.T) {
	s := migratedService(t, map[string]string{"SHUTDOWN_DRAIN_DELAY": "100ms", "JOBS_ENABLED": "false"})
	env := s.env
	tn := signup(t, s)
	const calls = 5
	for range calls {
		if status, body, err := get(s.url+"/v1/me", tn.AccessToken); err != nil || status != http.StatusOK {
			t.Fatalf("GET /v1/me: %d %s %v", status, body, err)
		}
	}
	s.terminate(t, 30*time.Second)

	ctx := context.Background()
	db, err := pgx.Connect(ctx, env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	var counted int
	err = db.QueryRow(ctx, "SELECT coalesce(sum(value), 0)::int FROM usage_rollups WHERE tenant_id = $1 AND meter_key = 'api_requests'",
		tn.Tenant.ID).Scan(&counted)
	if err != nil {
		t.Fatal(err)
	}
	if counted != calls {
		t.Fatalf("api_requests counted %d requests, want %d", counted, calls)
	}
}

// TestProfilesOnlyOnDebugAddr: with DEBUG_ADDR set, Go's profiles answer there and never on
// the public listener, and a profile being taken does not hold up a SIGTERM.
func TestProfilesOnlyOnDebugAddr(t *testing.T) {
	s := migratedService(t, map[string]string{"DEBUG_ADDR": proctest.FreeAddr(t), "SHUTDOWN_DRAIN_DELAY": "100ms"})
	env := s.env
	if status, body, err := get("http://"+env["DEBUG_ADDR"]+"/debug/pprof/heap?debug=1", ""); err != nil || status != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Errorf("GET /debug/pprof/heap on DEBUG_ADDR: %d %.80q %v, want 200 and a heap profile", status, body, err)
	}
	if status, _, err := get(s.url+"/debug/pprof/heap?debug=1", ""); err != nil || status != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/heap on HTTP_ADDR: %d %v, want 404", status, err)
	}

	profiling := make(chan struct{})
	go func() {
		defer close(profiling)
		get("http://"+env["DEBUG_ADDR"]+"/debug/pprof/profile?seconds=60", "")
	}()
	time.Sleep(200 * time.Millisecond) // let the profile start
	sent := time.Now()
	if err := s.terminate(t, 20*time.Second); err != nil {
		t.Errorf("api serve exited with %v after SIGTERM during a profile, want 0", err)
	}
	t.Logf("stopped %v after SIGTERM", time.Since(sent).Round(time.Millisecond))
	<-profiling
}

// TestDevelopmentWarnsOfPublicKeys: in development, serve says at start, in one warning, that
// tokens are signed with the public development key and webhook secrets sealed with a key
// derived from it; with keys of its own it says nothing of the kind.
func TestDevelopmentWarnsOfPublicKeys(t *testing.T) {
	warnings := func(s *service) []string {
		var out []string
		for _, line := range strings.Split(s.output.String(), "\n") {
			var l struct{ Level, Msg string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Level == "WARN" && strings.Contains(l.Msg, "development key") {
				out = append(out, l.Msg)
			}
		}
		return out
	}

	dev := migratedService(t, nil) // APP_ENV unset: development, with its public keys
	got := warnings(dev)
	if len(got) != 1 {
		t.Fatalf("%d warnings about development keys, want 1:\n%s", len(got), dev.output.String())
	}
	for _, w := range []string{"tokens are signed with the public development key", "JWT_SIGNING_KEY", "webhook secrets", "WEBHOOK_SECRET_KEY"} {
		if !strings.Contains(got[0], w) {
			t.Errorf("the warning does not say %q: %s", w, got[0])
		}
	}

	own := maps.Clone(dev.env)
	own["HTTP_ADDR"], own["METRICS_ADDR"] = proctest.FreeAddr(t), proctest.FreeAddr(t)
	own["JWT_SIGNING_KEY"] = "c2VjcmV0LXNlZWQtb2YtdGhpcnR5LXR3by1ieXRlcyE="
	own["WEBHOOK_SECRET_KEY"] = "b3RoZXItc2VjcmV0LW9mLXRoaXJ0eS10d28tYnl0ZXM="
	if got := warnings(startService(t, own)); len(got) != 0 {
		t.Errorf("with keys of its own, serve warns: %q", got)
	}
}

// TestImageRefusesPublicKeys: the Docker image runs in production, so a container given no
// keys of its own refuses to start instead of signing tokens with the public development key.
// Every command checks the configuration first; `migrate status` is the one that ends by
// itself either way (a `serve` that wrongly starts would run until killed).
func TestImageRefusesPublicKeys(t *testing.T) {
	env := dockerfileEnv(t, "../../Dockerfile")
	env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/saasbase_cmdtest_unused?sslmode=disable"
	r := runAPI(t, env, "migrate", "status")
	if r.code == 0 {
		t.Fatalf("the image's environment and no keys: exit status 0\n%s", r.stdout)
	}
	for _, w := range []string{"JWT_SIGNING_KEY", "WEBHOOK_SECRET_KEY"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not name %s:\n%s%s", w, r.stdout, r.stderr)
		}
	}
}

// dockerfileEnv is what the ENV instructions of the Dockerfile's last stage set (the
// KEY=value form, the one the Dockerfile uses).
func dockerfileEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
		case strings.EqualFold(fields[0], "FROM"):
			clear(env) // a new stage
		case strings.EqualFold(fields[0], "ENV"):
			for _, kv := range fields[1:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("%s: %q: want ENV KEY=value", path, line)
				}
				env[k] = strings.Trim(v, `"`)
			}
		}
	}
	return env
}

// TestMetricsOffThePublicListenerInProduction: in production /metrics answers 404 on
// HTTP_ADDR and is served on METRICS_ADDR, with the public listener's requests under bounded
// labels.
func TestMetricsOffThePublicListenerInProduction(t *testing.T) {
	key := "c2VjcmV0LXNlZWQtb2YtdGhpcnR5LXR3by1ieXRlcyE=" // 32 bytes, not the development key
	s := migratedService(t, map[string]string{"APP_ENV": "production", "JWT_SIGNING_KEY": key, "WEBHOOK_SECRET_KEY": key})
	if status, body, err := get(s.url+"/metrics", ""); err != nil || status != http.StatusNotFound {
		t.Errorf("GET /metrics on HTTP_ADDR: %d %.80q %v, want 404", status, body, err)
	}
	req, err := http.NewRequest("INVENTED", s.url+"/livez", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()

	status, body, err := get("http://"+s.env["METRICS_ADDR"]+"/metrics", "")
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET /metrics on METRICS_ADDR: %d %v, want 200", status, err)
	}
	for _, want := range []string{
		`http_request_duration_seconds_count{method="GET",route="/readyz",status="200"}`,
		`http_request_duration_seconds_count{method="OTHER",route="unmatched",status="405"} 1`, // /livez is served, under GET
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics on METRICS_ADDR has no %s", want)
		}
	}
	if strings.Contains(body, "INVENTED") {
		t.Error("/metrics on METRICS_ADDR labels an invented method")
	}
}
