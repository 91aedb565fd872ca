package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/saasbase/saasbase/internal/platform/promtest"
)

// dashboardExprs answers the PromQL of every panel of deploy/grafana/dashboards/saasbase.json.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "deploy/grafana/dashboards/saasbase.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("saasbase.json: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	return exprs
}

// TestPrometheusScrapesService: a real Prometheus scrapes `api serve` on METRICS_ADDR as an
// operator's would, with deploy/prometheus/alerts.yml loaded. The target is up; requests move
// the request counter as Prometheus sees it; every metric the alerts and the Grafana
// dashboard read is one the service exports (a renamed metric would leave an alert that can
// never fire); every rule evaluates without error, and an idle, healthy service raises none.
func TestPrometheusScrapesService(t *testing.T) {
	promtest.Binary(t)
	// One request a minute per address to the routes without a credential: the second
	// signup is denied, and the denial counted (ratelimit_denied_total).
	s := migratedService(t, map[string]string{"AUTH_RATE_LIMIT_PER_MINUTE": "1"})
	rules := mustAbs(t, filepath.Join(repoRoot, "deploy/prometheus/alerts.yml"))
	prom := promtest.Start(t, []string{s.env["METRICS_ADDR"]}, rules)

	prom.WaitFor(t, 30*time.Second, "the service's target up", func() (bool, string) {
		up := prom.Query(t, `up{job="saasbase"}`)
		return len(up) == 1 && up[0].Value == 1, fmt.Sprint(up)
	})

	const requests = 7
	for range requests {
		if status, body, err := get(s.url+"/livez", ""); err != nil || status != http.StatusOK {
			t.Fatalf("GET /livez: %d %s %v", status, body, err)
		}
	}
	for i, want := range []int{http.StatusBadRequest, http.StatusTooManyRequests} {
		if status, body := postJSON(t, s.url+"/v1/signup", "", map[string]string{}); status != want {
			t.Fatalf("signup %d with an empty body: %d %s, want %d", i+1, status, body, want)
		}
	}
	prom.WaitFor(t, 30*time.Second, "Prometheus counts the requests to /livez", func() (bool, string) {
		got := prom.Query(t, `sum(http_request_duration_seconds_count{job="saasbase", route="/livez"})`)
		return len(got) == 1 && got[0].Value >= requests, fmt.Sprint(got)
	})

	loaded := prom.Rules(t)
	var read []string
	for _, r := range loaded {
		read = append(read, promtest.MetricNamesIn(r.Query)...)
	}
	if len(loaded) < 8 {
		t.Fatalf("Prometheus loaded %d alerting rules from alerts.yml", len(loaded))
	}
	for _, e := range dashboardExprs(t) {
		read = append(read, promtest.MetricNamesIn(e)...)
	}
	slices.Sort(read)
	read = slices.Compact(read)
	var missing []string
	prom.WaitFor(t, 30*time.Second, "every metric the alerts and the dashboard read, in Prometheus", func() (bool, string) {
		held := prom.MetricNames(t)
		missing = missing[:0]
		for _, name := range read {
			if !slices.Contains(held, name) {
				missing = append(missing, name)
			}
		}
		return len(missing) == 0, fmt.Sprintf("missing %v", missing)
	})

	// Every rule has been evaluated since the metrics arrived: none in error, none firing.
	prom.WaitFor(t, 30*time.Second, "every rule evaluated without error", func() (bool, string) {
		var notOK []string
		for _, r := range prom.Rules(t) {
			if r.Health != "ok" {
				notOK = append(notOK, r.Name+": "+r.Health+" "+r.LastError)
			}
		}
		return len(notOK) == 0, fmt.Sprint(notOK)
	})
	for _, a := range prom.Alerts(t) {
		t.Errorf("an idle, healthy service raises %s (%s): %v", a.Labels["alertname"], a.State, a.Labels)
	}
	t.Logf("%d rules, %d metrics read by the rules and the dashboard, all exported", len(loaded), len(read))
}
