package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"
)

// config is the command line.
type config struct {
	origin      string // the service, scheme://host:port
	tenants     int
	duration    time.Duration
	workers     int
	flooders    int
	adminToken  string
	databaseURL string
	bareConns   int
	seed        uint64
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./cmd/load [flags]\n\nDrives a running saasbase with a multi-tenant mix of requests and reports per route.\n\nflags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.origin, "url", "http://127.0.0.1:8080", "the service's base `URL`; all traffic goes there")
	fs.IntVar(&cfg.tenants, "tenants", 8, "tenants that share the mixed traffic, signed up on start")
	fs.DurationVar(&cfg.duration, "duration", 30*time.Second, "length of the mixed run")
	fs.IntVar(&cfg.workers, "workers", 16, "concurrent requests of the mix (and of the baseline rounds)")
	fs.IntVar(&cfg.flooders, "flooders", 1, "extra tenants that each flood GET /v1/projects, to meet the rate limiter")
	fs.StringVar(&cfg.adminToken, "admin-token", "", "an operator `JWT`; if set, tenants are spread over the plans free, pro and enterprise")
	fs.StringVar(&cfg.databaseURL, "database-url", "", "owner `URL` of the service's database; if set, GET /v1/projects/{id} is also compared with a bare chi+pgx handler")
	fs.IntVar(&cfg.bareConns, "bare-conns", 0, "the bare server's pool `size`; give the service the same (DATABASE_MAX_CONNS) to compare like with like (0: pgx's default, max(4, CPUs))")
	fs.Uint64Var(&cfg.seed, "seed", 0, "seed of the request mix; 0 picks one (printed, so a run can be repeated)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if cfg.seed == 0 {
		cfg.seed = rand.Uint64()
	}
	return cfg, cfg.validate()
}

func (cfg *config) validate() error {
	var errs []error
	u, err := url.Parse(cfg.origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
		errs = append(errs, fmt.Errorf("-url %q: want http(s)://host[:port]", cfg.origin))
	} else {
		cfg.origin = u.Scheme + "://" + u.Host
	}
	if cfg.tenants < 1 {
		errs = append(errs, errors.New("-tenants must be at least 1"))
	}
	if cfg.workers < 1 {
		errs = append(errs, errors.New("-workers must be at least 1"))
	}
	if cfg.flooders < 0 {
		errs = append(errs, errors.New("-flooders must not be negative"))
	}
	if cfg.bareConns < 0 {
		errs = append(errs, errors.New("-bare-conns must not be negative"))
	}
	if cfg.duration <= 0 {
		errs = append(errs, errors.New("-duration must be positive"))
	}
	return errors.Join(errs...)
}
