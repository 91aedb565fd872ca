package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// usageBatch is how many CloudEvents one POST /v1/usage/events carries.
const usageBatch = 100

// traffic is the mixed run: the actions of the workers, and what the service showed it
// lacks, which takes those actions out of the mix.
type traffic struct {
	c          *client
	fleet      fleet
	noOFREP    atomic.Bool // OFREP answered 404: feature flags are not deployed here
	noPayments atomic.Bool // 503 payment_provider_unavailable: no payment provider configured
}

// mix is the realistic mix of requests: mostly reads of single projects and flag
// evaluations, as a busy tenant's application would send them.
func (tr *traffic) mix() mix {
	return mix{
		{weight: 35, run: tr.getProject},
		{weight: 10, run: tr.listProjects},
		{weight: 8, run: tr.createProject},
		{weight: 4, run: tr.updateProject},
		{weight: 10, run: tr.sendUsage},
		{weight: 20, run: tr.evaluateFlags, off: &tr.noOFREP},
		{weight: 5, run: tr.pay, off: &tr.noPayments},
		{weight: 3, run: tr.entitlements},
		{weight: 5, run: tr.events},
	}
}

// notes says what the table cannot: actions the service turned out not to offer, and
// oddities the recorder noted.
func (tr *traffic) notes() []string {
	var notes []string
	if tr.noOFREP.Load() {
		notes = append(notes, "OFREP answered 404, feature flags are not deployed: its share of the mix went to the other actions")
	}
	if tr.noPayments.Load() {
		notes = append(notes, "payments answered 503 payment_provider_unavailable (no payment provider configured), so they stopped")
	}
	return append(notes, tr.c.stats.noteLines()...)
}

func (tr *traffic) getProject(ctx context.Context, r *rand.Rand, t *tenant) {
	tr.c.do(ctx, call{route: routeGetProject, params: []string{t.project(r)}, as: t.session})
}

func (tr *traffic) listProjects(ctx context.Context, r *rand.Rand, t *tenant) {
	tr.c.do(ctx, call{route: routeListProjects, as: t.session})
}

func (tr *traffic) createProject(ctx context.Context, r *rand.Rand, t *tenant) {
	createProject(ctx, tr.c, t, fmt.Sprintf("load %d", r.IntN(1_000_000)))
}

// createProject creates a project with a fresh Idempotency-Key, as a careful client does,
// and adds it to the tenant's projects for later reads and updates.
func createProject(ctx context.Context, c *client, t *tenant, name string) (answer, error) {
	var p struct {
		ID string `json:"id"`
	}
	a, err := c.do(ctx, call{
		route:   routeCreateProject,
		body:    map[string]string{"name": name, "description": "created by the load generator"},
		idemKey: uuid.NewString(),
		as:      t.session,
		out:     &p,
	})
	if err == nil && a.status == 201 {
		t.addProject(p.ID)
	}
	return a, err
}

func (tr *traffic) updateProject(ctx context.Context, r *rand.Rand, t *tenant) {
	tr.c.do(ctx, call{
		route:   routeUpdateProject,
		params:  []string{t.project(r)},
		body:    map[string]string{"description": "updated at " + time.Now().UTC().Format(time.RFC3339Nano)},
		idemKey: uuid.NewString(),
		as:      t.session,
	})
}

// cloudEvent is a usage event as POST /v1/usage/events takes it.
type cloudEvent struct {
	SpecVersion string    `json:"specversion"`
	ID          string    `json:"id"`
	Source      string    `json:"source"`
	Type        string    `json:"type"`
	Time        string    `json:"time"`
	Data        usageData `json:"data"`
}

type usageData struct {
	Units int `json:"units"`
}

func (tr *traffic) sendUsage(ctx context.Context, r *rand.Rand, t *tenant) {
	now := time.Now().UTC().Format(time.RFC3339)
	batch := make([]cloudEvent, usageBatch)
	for i := range batch {
		batch[i] = cloudEvent{
			SpecVersion: "1.0",
			ID:          uuid.NewString(), // events are deduplicated on (tenant, source, id)
			Source:      "load",
			Type:        "api_call",
			Time:        now,
			Data:        usageData{Units: 1 + r.IntN(10)},
		}
	}
	tr.c.do(ctx, call{route: routeUsageEvents, body: batch, as: t.session})
}

// evaluateFlags asks for every flag at once, as an OpenFeature SDK does on start and when it
// polls. Where feature flags are not deployed, the first 404 takes this action out of the mix.
func (tr *traffic) evaluateFlags(ctx context.Context, r *rand.Rand, t *tenant) {
	body := map[string]any{"context": map[string]string{"targetingKey": fmt.Sprintf("user-%d", r.IntN(1000))}}
	a, err := tr.c.do(ctx, call{route: routeOFREPBulk, body: body, as: t.session})
	if err == nil && a.status == 404 {
		tr.noOFREP.Store(true)
	}
}

// pay creates a payment, then sends it again with the same Idempotency-Key, as a client that
// lost the first answer would: the second must replay the first. Without a payment provider
// every payment fails alike, so the first 503 payment_provider_unavailable ends payments.
func (tr *traffic) pay(ctx context.Context, r *rand.Rand, t *tenant) {
	c := call{
		route:   routePayment,
		body:    map[string]any{"amount": 1000 + r.IntN(9000), "currency": "usd"},
		idemKey: uuid.NewString(),
		as:      t.session,
	}
	first, err := tr.c.do(ctx, c)
	switch {
	case err != nil:
		return
	case first.status == 503 && first.code == "payment_provider_unavailable":
		tr.noPayments.Store(true)
		return
	case first.status/100 != 2:
		return // a 429, say: nothing was stored to replay
	}
	c.route = routePaymentReplay
	second, err := tr.c.do(ctx, c)
	if err == nil && second.status/100 == 2 && second.header.Get("Idempotent-Replayed") != "true" {
		tr.c.stats.note("POST /v1/payments: a repeated Idempotency-Key was answered without Idempotent-Replayed: true")
	}
}

func (tr *traffic) entitlements(ctx context.Context, r *rand.Rand, t *tenant) {
	tr.c.do(ctx, call{route: routeEntitlements, as: t.session})
}

func (tr *traffic) events(ctx context.Context, r *rand.Rand, t *tenant) {
	tr.c.do(ctx, call{route: routeEvents, as: t.session})
}
