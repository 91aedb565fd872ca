package events_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/promtest"
)

// TestDeadLetterAlertFires: a real Prometheus scrapes the pipeline's metrics and evaluates
// deploy/prometheus/alerts.yml; a consumer that always fails dead-letters an event, the
// dead-letter counter Prometheus holds moves from 0 to 1, and EventsDeadLettered fires for
// that consumer.
func TestDeadLetterAlertFires(t *testing.T) {
	promtest.Binary(t)
	h := newHarness(t)
	failing := name("always-fails")
	cs := h.consumers(events.Consumer{Name: failing, Handle: func(context.Context, pgx.Tx, events.Event) error {
		return errors.New("always fails")
	}})
	metrics := httptest.NewServer(promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{}))
	t.Cleanup(metrics.Close)
	rules, err := filepath.Abs("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	prom := promtest.Start(t, []string{strings.TrimPrefix(metrics.URL, "http://")}, rules)

	series := `events_dead_letters_total{consumer="` + failing + `"}`
	// The series is there at 0 before any failure (Consumers.Add starts it), so that
	// increase() sees the first dead letter.
	prom.WaitFor(t, 30*time.Second, "prometheus holds "+series+" at 0", func() (bool, string) {
		got := prom.Query(t, series)
		return len(got) == 1 && got[0].Value == 0, fmt.Sprint(got)
	})

	transport := events.NewInProcess(8, cs.Names()...)
	startConsumers(t, cs, transport)
	run(t, h.relay(transport).Run)
	h.appendEvents(uuid.New(), "test.poison", 0, 1, 1)

	prom.WaitFor(t, 60*time.Second, series+" at 1 in prometheus", func() (bool, string) {
		got := prom.Query(t, series)
		return len(got) == 1 && got[0].Value == 1, fmt.Sprint(got)
	})
	prom.WaitFor(t, 60*time.Second, "EventsDeadLettered firing for "+failing, func() (bool, string) {
		alerts := prom.Alerts(t)
		for _, a := range alerts {
			if a.Labels["alertname"] == "EventsDeadLettered" && a.Labels["consumer"] == failing && a.State == "firing" {
				return true, ""
			}
		}
		return false, fmt.Sprint(alerts)
	})
	for _, r := range prom.Rules(t) {
		if r.Health == "err" {
			t.Errorf("rule %s: %s", r.Name, r.LastError)
		}
	}
}
