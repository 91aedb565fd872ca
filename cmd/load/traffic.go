package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"
)

// run drives the mix from workers goroutines, each request for a random tenant of the
// fleet's workers, while each flooder sends GET /v1/projects as fast as answers come back.
// It stops drawing after d, lets the requests in flight finish, and answers how long it all
// took. Every second it prints a progress line to progress.
func (tr *traffic) run(ctx context.Context, d time.Duration, workers int, seed uint64, progress io.Writer) time.Duration {
	// Requests get ctx, not stop: one still in flight when the time is up is answered and
	// counted rather than cut off and miscounted as a transport error.
	stop, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	m := tr.mix()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		// One source per worker: no lock shared between them, and a run repeatable per seed
		// as far as goroutine scheduling allows.
		r := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			for stop.Err() == nil {
				t := tr.fleet.workers[r.IntN(len(tr.fleet.workers))]
				m.pick(r).run(ctx, r, t)
			}
		})
	}
	for _, t := range tr.fleet.flooders {
		wg.Go(func() {
			for stop.Err() == nil {
				tr.c.do(ctx, call{route: routeFlood, as: t.session})
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	watch(done, tr.c.stats, start, progress)
	return time.Since(start)
}

// watch prints, every second until done closes, the elapsed time, the request rate over the
// last second, and the 429s and failures so far.
func watch(done <-chan struct{}, rec *recorder, start time.Time, w io.Writer) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last, lastAt := int64(0), start
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			n, throttled, failed := rec.progress()
			fmt.Fprintf(w, "%4.0fs  %7.0f req/s  429s %d  errors %d\n",
				now.Sub(start).Seconds(), float64(n-last)/now.Sub(lastAt).Seconds(), throttled, failed)
			last, lastAt = n, now
		}
	}
}
