// Command load drives a running saasbase with a realistic multi-tenant mix of requests and
// reports, per route, throughput, latency percentiles and how the answers went: 2xx, 4xx,
// 429s by reason (rate_limited or quota_exceeded), 5xx and transport errors.
//
//	go run ./cmd/load -url http://127.0.0.1:8080 -duration 30s
//
// It signs up its own tenants (slugs load-<run>-<i>); extra "flooder" tenants send
// GET /v1/projects as fast as they can, to meet the rate limiter. With -admin-token the
// tenants are spread over the plans; with -database-url it also compares
// GET /v1/projects/{id} with a bare chi+pgx handler of the same query, the baseline that the
// service's middleware must not wreck, served by a child process (`load bare`) so that it
// runs as the service does. `make load` runs it against a fresh server.
//
// It exits 1 when setup fails, or when more than 1% of the requests got a 5xx or no answer.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// maxFailureRate is the share of requests, in percent, that may fail (5xx or no answer)
// before the run counts as failed.
const maxFailureRate = 1.0

func main() {
	// Ctrl-C ends the run early; the table of what was sent is still printed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var code int
	if len(os.Args) > 1 && os.Args[1] == bareCommand {
		code = serveBare(ctx, os.Args[2:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	} else {
		code = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(code)
}

// run is the command; progress goes to stderr, the report to stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "load:", err)
		return 2
	}
	fmt.Fprintf(stderr, "load: %s for %s, %d workers, seed %d\n", cfg.origin, cfg.duration, cfg.workers, cfg.seed)

	// The baseline's database first: if it cannot be reached, better to know before the run.
	var bare *bareProcess
	if cfg.databaseURL != "" {
		if bare, err = spawnBare(ctx, cfg.databaseURL, cfg.bareConns, stderr); err != nil {
			fmt.Fprintln(stderr, "load: baseline:", err)
			return 1
		}
		defer bare.close()
	}
	f, err := setUp(ctx, newClient(cfg.origin, setupConcurrency, nil), cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "load: setup:", err)
		return 1
	}

	rec := newRecorder()
	tr := &traffic{c: newClient(cfg.origin, cfg.workers+len(f.flooders), rec), fleet: f}
	elapsed := tr.run(ctx, cfg.duration, cfg.workers, cfg.seed, stderr)
	rows, total := rec.summaries(elapsed)
	interrupted := ""
	if ctx.Err() != nil {
		interrupted = " (interrupted)"
	}
	fmt.Fprintf(stdout, "\nmixed run%s: %s, %d workers over %d tenants (%s), flooders: %d\n\n",
		interrupted, elapsed.Round(10*time.Millisecond), cfg.workers, len(f.workers), planCounts(f.workers), len(f.flooders))
	writeTable(stdout, append(rows, total)...)
	fmt.Fprintf(stdout, "\nfailed (5xx or no answer): %d of %d requests, %.2f%%\n",
		total.failed(), total.requests, failureRate(total.counts))
	for _, line := range tr.notes() {
		fmt.Fprintln(stdout, "note:", line)
	}

	sum := total.counts
	if bare != nil && ctx.Err() == nil {
		c, err := compareBaseline(ctx, cfg, bare, f.baseline, stderr)
		if err != nil {
			fmt.Fprintln(stdout, "\nbaseline: interrupted")
		} else {
			writeComparison(stdout, c, cfg.workers)
			sum.add(c.service.counts)
		}
	}
	if rate := failureRate(sum); rate > maxFailureRate {
		fmt.Fprintf(stderr, "load: %.2f%% of the requests failed (5xx or no answer), more than %.0f%%\n", rate, maxFailureRate)
		return 1
	}
	return 0
}
