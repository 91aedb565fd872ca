package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	ownerPassword     = "load-generator-password"
	projectsPerTenant = 3
	// Signups hash a password, which is costly on purpose, so a few run at a time.
	setupConcurrency = 4
)

// fleet is every tenant of the run.
type fleet struct {
	workers  []*tenant // share the mixed traffic
	flooders []*tenant // each floods GET /v1/projects
	baseline *tenant   // serves the baseline comparison; nil without -database-url
}

// setUp signs up the tenants, with unique slugs load-<run>-<i>, and gives each its first
// projects. With an operator token it spreads the workers' tenants over the plans, leaves
// the flooders on the signup plan (the smallest budget, which the flood should exhaust), and
// lifts the baseline tenant's rate limit.
func setUp(ctx context.Context, c *client, cfg config, log io.Writer) (fleet, error) {
	start := time.Now()
	// Not from -seed: the slugs of two runs with one seed must still differ.
	run := fmt.Sprintf("%08x", rand.Uint32())
	n := cfg.tenants + cfg.flooders
	if cfg.databaseURL != "" {
		n++
	}
	all := make([]*tenant, n)
	plans := [...]string{"free", "pro", "enterprise"} // the seeded ones
	err := parallel(n, setupConcurrency, func(i int) error {
		t, err := signup(ctx, c, fmt.Sprintf("load-%s-%d", run, i))
		if err != nil {
			return err
		}
		all[i] = t
		if cfg.adminToken == "" {
			return nil
		}
		switch {
		case i < cfg.tenants:
			return setPlan(ctx, c, cfg.adminToken, t, planChange{Plan: plans[i%len(plans)]})
		case i == cfg.tenants+cfg.flooders:
			// The baseline measures what the middleware costs, the limiter's check included,
			// not its denials: a few workers outrun even enterprise's 1000 requests a second.
			return setPlan(ctx, c, cfg.adminToken, t, planChange{
				Plan:      "enterprise",
				RateLimit: &rateLimit{RequestsPerSecond: 1e6, Burst: 1e6},
			})
		}
		return nil
	})
	if err != nil {
		return fleet{}, err
	}
	f := fleet{workers: all[:cfg.tenants], flooders: all[cfg.tenants : cfg.tenants+cfg.flooders]}
	if cfg.databaseURL != "" {
		f.baseline = all[n-1]
	}
	fmt.Fprintf(log, "setup: %d tenants (%s), flooders: %d, %d projects each, in %s\n",
		len(f.workers), planCounts(f.workers), len(f.flooders), projectsPerTenant, time.Since(start).Round(time.Millisecond))
	return f, nil
}

// signup creates a tenant and its owner, then the tenant's first projects.
func signup(ctx context.Context, c *client, slug string) (*tenant, error) {
	var res struct {
		Tenant struct {
			ID   string `json:"id"`
			Plan string `json:"plan"`
		} `json:"tenant"`
		tokenPair
	}
	a, err := c.do(ctx, call{
		route: routeSignup,
		body: map[string]string{
			"tenant_name": "Load " + slug,
			"tenant_slug": slug,
			"email":       "owner@" + slug + ".test",
			"password":    ownerPassword,
		},
		out: &res,
	})
	if err == nil && a.status != 201 {
		err = errors.New(a.String())
	}
	if err != nil {
		return nil, fmt.Errorf("signup %s: %w", slug, err)
	}
	t := &tenant{id: res.Tenant.ID, slug: slug, plan: res.Tenant.Plan, session: newSession(res.tokenPair)}
	for i := range projectsPerTenant {
		a, err := createProject(ctx, c, t, fmt.Sprintf("setup %d", i))
		if err == nil && a.status != 201 {
			err = errors.New(a.String())
		}
		if err != nil {
			return nil, fmt.Errorf("tenant %s: create project: %w", slug, err)
		}
	}
	return t, nil
}

// planChange is the body of PATCH /v1/admin/tenants/{id}.
type planChange struct {
	Plan      string     `json:"plan"`
	RateLimit *rateLimit `json:"rate_limit,omitempty"`
}

type rateLimit struct {
	RequestsPerSecond float64 `json:"requests_per_second"`
	Burst             int     `json:"burst"`
}

func setPlan(ctx context.Context, c *client, adminToken string, t *tenant, change planChange) error {
	var res struct {
		Plan string `json:"plan"`
	}
	a, err := c.do(ctx, call{route: routeAdminTenant, params: []string{t.id}, body: change, bearer: adminToken, out: &res})
	if err == nil && a.status != 200 {
		err = errors.New(a.String())
	}
	if err != nil {
		return fmt.Errorf("tenant %s: set plan %s: %w", t.slug, change.Plan, err)
	}
	t.plan = res.Plan
	return nil
}

// planCounts says how many tenants are on each plan, e.g. "free 3, pro 3, enterprise 2".
func planCounts(ts []*tenant) string {
	counts := map[string]int{}
	var order []string
	for _, t := range ts {
		if counts[t.plan] == 0 {
			order = append(order, t.plan)
		}
		counts[t.plan]++
	}
	parts := make([]string, len(order))
	for i, p := range order {
		parts[i] = fmt.Sprintf("%s %d", p, counts[p])
	}
	return strings.Join(parts, ", ")
}

// parallel runs fn(i) for i in [0, n), at most limit at once, and answers the first error.
// After one it starts nothing more: a failing setup tends to be one failure, many times.
func parallel(n, limit int, fn func(i int) error) error {
	sem := make(chan struct{}, limit)
	var (
		wg     sync.WaitGroup
		once   sync.Once
		first  error
		failed atomic.Bool
	)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if failed.Load() {
				return
			}
			if err := fn(i); err != nil {
				failed.Store(true)
				once.Do(func() { first = err })
			}
		})
	}
	wg.Wait()
	return first
}
