package events_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/events"
)

// Test 4: a consumer that fails 3 times then succeeds applies the event once; one that
// always fails on an event dead-letters it after its last attempt, while the other tenants'
// events, the same tenant's later ones, and the other consumers keep flowing.
func TestRetryAndDeadLetter(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			h := newHarness(t)
			flaky, poison, steady := name("flaky-"+tr.name), name("poison-"+tr.name), name("steady-"+tr.name)

			var mu sync.Mutex
			failures := map[uuid.UUID]int{}
			flakyConsumer := events.Consumer{Name: flaky, Handle: func(ctx context.Context, tx pgx.Tx, e events.Event) error {
				if e.Type == "test.first" {
					mu.Lock()
					failures[e.ID]++
					n := failures[e.ID]
					mu.Unlock()
					if n <= 3 {
						return errors.New("flaky: not yet")
					}
				}
				return recordEffect(ctx, tx, flaky, e)
			}}
			poisonConsumer := events.Consumer{Name: poison, Handle: func(ctx context.Context, tx pgx.Tx, e events.Event) error {
				if e.Type == "test.poison" {
					panic("poison event")
				}
				return recordEffect(ctx, tx, poison, e)
			}}
			cs := h.consumers(flakyConsumer, poisonConsumer, effectConsumer(steady))
			transport := tr.new(t, cs)
			startConsumers(t, cs, transport)
			run(t, h.relay(transport).Run)

			a, b := uuid.New(), uuid.New()
			h.appendEvents(a, "test.first", 0, 1, 1)
			h.appendEvents(a, "test.poison", 1, 1, 1)
			h.appendEvents(a, "test.after", 2, 3, 1)
			h.appendEvents(b, "test.other", 0, 20, 5)

			waitFor(t, 30*time.Second, "every event settled", func() bool {
				return h.count("SELECT count(*) FROM test_effects WHERE consumer = $1", steady) == 25 &&
					h.count("SELECT count(*) FROM test_effects WHERE consumer = $1", flaky) == 25 &&
					h.count("SELECT count(*) FROM test_effects WHERE consumer = $1", poison) == 24 &&
					h.count("SELECT count(*) FROM event_retries WHERE consumer IN ($1, $2)", flaky, poison) == 0
			})
			h.checkEffects(steady, 25)
			h.checkEffects(flaky, 25)
			h.checkEffects(poison, 24)

			var attempts int
			var lastErr string
			err := h.owner.QueryRow(context.Background(), `
				SELECT attempts, last_error FROM event_dead_letters d
				 WHERE consumer = $1 AND tenant_id = $2 AND event->>'type' = 'test.poison'`, poison, a).Scan(&attempts, &lastErr)
			if err != nil {
				t.Fatalf("the poison event is not in the dead letters: %v", err)
			}
			if attempts != 4 || lastErr != "panic: poison event" {
				t.Errorf("dead letter: %d attempts, error %q; want 4 and the panic", attempts, lastErr)
			}
			if n := h.count("SELECT count(*) FROM event_dead_letters WHERE consumer IN ($1, $2)", flaky, steady); n != 0 {
				t.Errorf("%d dead letters of consumers that recovered", n)
			}
			for _, c := range []struct {
				name           string
				failures, dead float64
			}{{flaky, 3, 0}, {poison, 4, 1}, {steady, 0, 0}} {
				if got := h.counter("events_consumer_failures_total", map[string]string{"consumer": c.name}); got != c.failures {
					t.Errorf("%s: failures metric %v, want %v", c.name, got, c.failures)
				}
				if got := h.counter("events_dead_letters_total", map[string]string{"consumer": c.name}); got != c.dead {
					t.Errorf("%s: dead letters metric %v, want %v", c.name, got, c.dead)
				}
			}
		})
	}
}
