package events_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/events"
)

// A tenant's event of a later batch is not handed to a free lane while its earlier event is
// still being settled in another, even when the Publish of the earlier one gave up waiting.
func TestInProcessBatchesDoNotOvertake(t *testing.T) {
	p := events.NewInProcess(4, "g")
	tenant := uuid.New()
	first, second := events.Event{ID: uuid.New(), TenantID: &tenant}, events.Event{ID: uuid.New(), TenantID: &tenant}
	release := make(chan struct{})
	var (
		mu    sync.Mutex
		order []uuid.UUID
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		p.Consume(ctx, "g", func(ctx context.Context, evs []events.Event) error {
			if evs[0].ID == first.ID {
				<-release // slow to settle
			}
			mu.Lock()
			defer mu.Unlock()
			order = append(order, evs[0].ID)
			return nil
		})
	})
	defer wg.Wait()
	defer cancel()

	short, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stop()
	if err := p.Publish(short, []events.Event{first}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish of the slow event = %v, want it to give up", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Publish(context.Background(), []events.Event{second}) }()
	time.Sleep(50 * time.Millisecond) // time for the second event to overtake, if it could
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second Publish did not return")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 2 || order[0] != first.ID {
		t.Fatalf("settled %v, want %s first", order, first.ID)
	}
}
