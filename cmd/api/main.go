// Command api is the service: `api serve` (the default), `api migrate up|down|status`, and
// `api token`, which mints a JWT for local development.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
	_ "time/tzdata" // IANA zones for tenants, whatever the image ships

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/platform/jsonlog"
	"github.com/saasbase/saasbase/internal/platform/logbuf"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/tracing"
	"github.com/saasbase/saasbase/internal/server"
	"github.com/saasbase/saasbase/migrations"
)

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  api [serve]                                          run the service
  api migrate up|down|status                           manage the schema (as DATABASE_URL)
  api token --tenant <slug|id> --role <role> [--ttl 1h]  print a JWT for local use
  api token --platform-admin [--ttl 1h]                print an operator JWT
                                                       (--ttl at most JWT_MAX_TOKEN_TTL)`

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	if cmd == "help" || cmd == "-h" || cmd == "--help" {
		fmt.Fprintln(stdout, usage)
		return nil
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	// The log is buffered (the access log writes a line per request) and written out after
	// serve has stopped and run its deferred steps, whatever the command's outcome.
	logOut := logbuf.New(stdout, logbuf.Options{})
	defer logOut.Close()
	logger := newLogger(cfg, logOut)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	switch cmd {
	case "serve":
		return serve(ctx, cfg, logger, getenv)
	case "migrate":
		return migrate(ctx, cfg, args, stdout)
	case "token":
		return token(ctx, cfg, args, stdout)
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

// newLogger logs JSON lines to w; warnings and errors are written at once, with every line
// before them, and the rest within logbuf's interval.
func newLogger(cfg config.Config, w *logbuf.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	return slog.New(logbuf.Handler(jsonlog.New(w, &slog.HandlerOptions{Level: level}), w, slog.LevelWarn))
}

// serve runs until SIGTERM or SIGINT, then drains: readyz turns 503 for DrainDelay so load
// balancers stop routing here, the listener closes, and in-flight requests finish.
func serve(ctx context.Context, cfg config.Config, logger *slog.Logger, getenv func(string) string) error {
	warnPublicKeys(logger, cfg.PublicKeys())
	tr, err := startTracing(ctx, logger, getenv)
	if err != nil {
		return err
	}
	if tr != nil {
		defer func() { // after app.Close: the spans of the last requests and jobs go out too
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tr.Shutdown(ctx); err != nil {
				logger.Warn("tracing: spans not exported at shutdown", slog.String("error", err.Error()))
			}
		}()
	}
	app, err := server.New(ctx, cfg, server.Options{Logger: logger, Tracing: tr})
	if err != nil {
		return err
	}
	defer app.Close()
	// Flags are evaluated from memory: load them before listening, then keep them current
	// (on every replica, whatever JOBS_ENABLED says) until app.Close stops the refresher. A
	// failed first load is not fatal: flags answer their callers' defaults until it succeeds.
	if err := app.FlagRefresher.Start(context.WithoutCancel(ctx)); err != nil {
		logger.Warn("flags: first load failed; retrying in the background", slog.String("error", err.Error()))
	}

	servers := []*http.Server{newHTTPServer(cfg, cfg.HTTPAddr, app.Handler())}
	if cfg.MetricsAddr != "" {
		servers = append(servers, newHTTPServer(cfg, cfg.MetricsAddr, app.MetricsHandler()))
	}
	var debug *http.Server
	if cfg.DebugAddr != "" {
		debug = newHTTPServer(cfg, cfg.DebugAddr, profiler())
		debug.WriteTimeout = 0 // a CPU profile takes as long as it is asked to
		servers = append(servers, debug)
	}
	jobsCtx, stopJobs := context.WithCancel(context.WithoutCancel(ctx))
	jobsDone := make(chan struct{})
	go func() {
		defer close(jobsDone)
		var wg sync.WaitGroup
		wg.Go(func() { app.RunReplica(jobsCtx) })
		if cfg.JobsEnabled {
			wg.Go(func() { app.RunBackground(jobsCtx) })
		}
		wg.Wait()
	}()
	defer func() {
		stopJobs()
		<-jobsDone
	}()

	// Every address is bound before any is served, so once /readyz answers, all of them do.
	listeners := make([]net.Listener, len(servers))
	for i, s := range servers {
		ln, err := net.Listen("tcp", s.Addr)
		if err != nil {
			for _, l := range listeners[:i] {
				l.Close()
			}
			return err
		}
		listeners[i] = ln
	}
	errc := make(chan error, len(servers))
	for i, s := range servers {
		logger.Info("listening", slog.String("addr", listeners[i].Addr().String()), slog.String("env", cfg.Env))
		go func() { errc <- s.Serve(listeners[i]) }()
	}

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("draining", slog.Duration("delay", cfg.DrainDelay))
	app.Drain()
	if debug != nil {
		debug.Close() // a profile being taken must not hold up the shutdown
	}
	time.Sleep(cfg.DrainDelay)

	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	var errShutdown error
	for _, s := range servers {
		if s != debug {
			errShutdown = errors.Join(errShutdown, s.Shutdown(shutdownCtx))
		}
	}
	logger.Info("stopped", slog.Any("error", errShutdown))
	return errShutdown
}

// startTracing sets up tracing from the OTEL_* variables: nil while they do not turn it on.
// The SDK reports failed exports through otel's one error handler, which is process-wide;
// they go to the log.
func startTracing(ctx context.Context, logger *slog.Logger, getenv func(string) string) (*tracing.Tracing, error) {
	tr, err := tracing.New(ctx, getenv)
	if err != nil {
		return nil, fmt.Errorf("configuration:\n%w", err)
	}
	if tr == nil {
		return nil, nil
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("tracing", slog.String("error", err.Error()))
	}))
	logger.Info("tracing on", slog.String("exporter", "otlp"))
	return tr, nil
}

// warnPublicKeys says, in one line at start, which secrets are the public development ones:
// fine on a laptop, dangerous anywhere reachable (production refuses them).
func warnPublicKeys(logger *slog.Logger, names []string) {
	if len(names) == 0 {
		return
	}
	what := map[string]string{
		"JWT_SIGNING_KEY":    "tokens are signed with the public development key (anyone can mint tokens this service accepts)",
		"WEBHOOK_SECRET_KEY": "webhook secrets are sealed with a key derived from the public development key",
	}
	var said []string
	for _, n := range names {
		said = append(said, what[n])
	}
	logger.Warn("WARNING: "+strings.Join(said, "; ")+"; set "+strings.Join(names, " and ")+
		" to secrets of your own (openssl rand -base64 32) before anyone else can reach this service",
		slog.Any("public_keys", names))
}

// profiler serves the runtime's profiles on their own mux, so they are reachable only on
// DEBUG_ADDR and never on the public listener.
func profiler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return m
}

func newHTTPServer(cfg config.Config, addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

func migrate(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	runtimeURL, err := postgres.RuntimeURL(cfg.DatabaseURL, cfg.AppDatabaseURL)
	if err != nil {
		return err
	}
	m := postgres.Migrator{OwnerURL: cfg.DatabaseURL, RuntimeURL: runtimeURL, FS: migrations.FS, Log: stdout}
	dir := "up"
	if len(args) > 0 {
		dir = args[0]
	}
	switch dir {
	case "up":
		if err := m.EnsureDatabase(ctx); err != nil {
			return err
		}
		return m.Up(ctx)
	case "down":
		return m.Down(ctx)
	case "status":
		return m.Status(ctx)
	}
	return fmt.Errorf("migrate: want up, down or status, not %q", dir)
}

// token mints a JWT with the service's own key. A tenant token speaks for the tenant's
// first owner (so /v1/me and idempotency keys have a real user) with the role asked for.
func token(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	tenantArg := fs.String("tenant", "", "tenant slug or id")
	roleArg := fs.String("role", "owner", "owner, admin or member")
	platform := fs.Bool("platform-admin", false, "mint an operator token (no tenant)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime, at most JWT_MAX_TOKEN_TTL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Signing would refuse a longer token too; refusing here names the setting, before any
	// connection is made.
	if *ttl <= 0 || *ttl > cfg.JWTMaxTokenTTL {
		return fmt.Errorf("token: --ttl %s must be more than 0 and at most JWT_MAX_TOKEN_TTL (%s)", *ttl, cfg.JWTMaxTokenTTL)
	}
	app, err := server.New(ctx, cfg, server.Options{})
	if err != nil {
		return err
	}
	defer app.Close()

	if *platform {
		tok, err := app.Sessions.AccessToken(uuid.Nil, "platform-admin", auth.RolePlatformAdmin, *ttl)
		if err == nil {
			fmt.Fprintln(stdout, tok)
		}
		return err
	}
	role, ok := auth.ParseTenantRole(*roleArg)
	if !ok || *tenantArg == "" {
		return errors.New("token: want --tenant <slug|id> and --role owner|admin|member, or --platform-admin")
	}
	tenantID, err := uuid.Parse(*tenantArg)
	if err != nil {
		err = app.DB.Pool.QueryRow(ctx, "SELECT tenant_id FROM app.tenant_by_slug($1)", *tenantArg).Scan(&tenantID)
		if postgres.IsNoRows(err) {
			return fmt.Errorf("token: no tenant %q (sign one up first: POST /v1/signup)", *tenantArg)
		}
		if err != nil {
			return err
		}
	}
	var userID uuid.UUID
	err = app.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT id FROM users ORDER BY role = 'owner' DESC, id LIMIT 1").Scan(&userID)
	})
	if postgres.IsNoRows(err) {
		return fmt.Errorf("token: tenant %s has no users", *tenantArg)
	}
	if err != nil {
		return err
	}
	tok, err := app.Sessions.AccessToken(tenantID, userID.String(), role, *ttl)
	if err == nil {
		fmt.Fprintln(stdout, tok)
	}
	return err
}
