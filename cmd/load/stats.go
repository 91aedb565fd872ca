package main

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// recorder collects the answers of one phase, per route. One mutex guards it all: a map
// lookup and an append cost far less than the requests they record, even at tens of
// thousands a second, and a single lock keeps the bookkeeping obvious. A nil recorder
// records nothing.
type recorder struct {
	mu     sync.Mutex
	routes map[route]*routeStats
	notes  map[string]int // oddities worth a line under the table, with how often they came

	// Running totals for the progress line, read during the run without mu.
	requests, throttled, failures atomic.Int64
}

type routeStats struct {
	latencies []time.Duration // every answer's; unbounded, which is fine for bounded runs
	counts
}

// counts sorts a route's requests by outcome.
type counts struct {
	requests      int
	ok            int // 2xx
	clientErr     int // 4xx, except 429 rate_limited and quota_exceeded, counted apart
	rateLimited   int // 429 rate_limited: the tenant's requests per second or concurrency
	quotaExceeded int // 429 quota_exceeded: the plan's hard quota for the period
	serverErr     int // 5xx
	transport     int // no answer at all: refused, reset, timed out
}

func (c *counts) add(o counts) {
	c.requests += o.requests
	c.ok += o.ok
	c.clientErr += o.clientErr
	c.rateLimited += o.rateLimited
	c.quotaExceeded += o.quotaExceeded
	c.serverErr += o.serverErr
	c.transport += o.transport
}

// failed counts what fails a run: the requests the service did not answer properly.
func (c counts) failed() int { return c.serverErr + c.transport }

func newRecorder() *recorder {
	return &recorder{routes: map[route]*routeStats{}, notes: map[string]int{}}
}

// record counts an answer. code is the problem's code; only 429s need it.
func (rec *recorder) record(r route, status int, code string, latency time.Duration) {
	if rec == nil {
		return
	}
	rec.requests.Add(1)
	switch {
	case status == 429:
		rec.throttled.Add(1)
	case status >= 500:
		rec.failures.Add(1)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	s := rec.stats(r)
	s.requests++
	s.latencies = append(s.latencies, latency)
	switch {
	case status == 429 && code == "rate_limited":
		s.rateLimited++
	case status == 429 && code == "quota_exceeded":
		s.quotaExceeded++
	case status >= 200 && status < 300:
		s.ok++
	case status >= 400 && status < 500:
		s.clientErr++
	case status >= 500:
		s.serverErr++
	default:
		// The client follows no redirects and sends no conditional requests, so a 1xx or
		// 3xx is a surprise: worth a note, not a column.
		rec.notes[fmt.Sprintf("%s answered %d", r, status)]++
	}
}

// fail counts a request that got no answer.
func (rec *recorder) fail(r route) {
	if rec == nil {
		return
	}
	rec.requests.Add(1)
	rec.failures.Add(1)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	s := rec.stats(r)
	s.requests++
	s.transport++
}

// note records an oddity the table has no column for.
func (rec *recorder) note(msg string) {
	if rec == nil {
		return
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.notes[msg]++
}

// stats is r's entry, made on first use; mu must be held.
func (rec *recorder) stats(r route) *routeStats {
	s := rec.routes[r]
	if s == nil {
		s = &routeStats{}
		rec.routes[r] = s
	}
	return s
}

// progress answers the running totals: requests, 429s, and failures (5xx and no answer).
func (rec *recorder) progress() (requests, throttled, failures int64) {
	return rec.requests.Load(), rec.throttled.Load(), rec.failures.Load()
}

// A summary is one row of the report.
type summary struct {
	name           string
	rate           float64 // requests per second
	p50, p99, p999 time.Duration
	counts
}

func summarize(name string, latencies []time.Duration, c counts, elapsed time.Duration) summary {
	sorted := slices.Clone(latencies)
	slices.Sort(sorted)
	var rate float64
	if elapsed > 0 {
		rate = float64(c.requests) / elapsed.Seconds()
	}
	return summary{
		name:   name,
		rate:   rate,
		p50:    percentile(sorted, 500),
		p99:    percentile(sorted, 990),
		p999:   percentile(sorted, 999),
		counts: c,
	}
}

// summaries answers a row per route, ordered by path pattern so the methods of one resource
// stand together, and the row of all routes together. Rates are over elapsed.
func (rec *recorder) summaries(elapsed time.Duration) (rows []summary, total summary) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var all []time.Duration
	var sum counts
	for r, s := range rec.routes {
		rows = append(rows, summarize(string(r), s.latencies, s.counts, elapsed))
		all = append(all, s.latencies...)
		sum.add(s.counts)
	}
	slices.SortFunc(rows, func(a, b summary) int {
		return cmp.Or(cmp.Compare(route(a.name).pattern(), route(b.name).pattern()), cmp.Compare(a.name, b.name))
	})
	return rows, summarize("TOTAL", all, sum, elapsed)
}

// summaryOf answers the summary of one route, empty if it had no requests.
func (rec *recorder) summaryOf(r route, elapsed time.Duration) summary {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	s := rec.stats(r)
	return summarize(string(r), s.latencies, s.counts, elapsed)
}

// noteLines answers the notes, most frequent first.
func (rec *recorder) noteLines() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	msgs := slices.Collect(maps.Keys(rec.notes))
	slices.SortFunc(msgs, func(a, b string) int {
		return cmp.Or(cmp.Compare(rec.notes[b], rec.notes[a]), cmp.Compare(a, b))
	})
	lines := make([]string, len(msgs))
	for i, msg := range msgs {
		lines[i] = fmt.Sprintf("%s (%d×)", msg, rec.notes[msg])
	}
	return lines
}

// percentile answers the nearest-rank percentile of sorted latencies: the smallest latency
// that at least permille/1000 of them do not exceed, e.g. permille 999 for p99.9. Thousandths
// in integers, because 99.9/100*n in floating point lands just above a whole rank and picks
// the next one. No latencies answer 0.
func percentile(sorted []time.Duration, permille int) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := (permille*n + 999) / 1000 // ceil(permille*n/1000), 1-based
	return sorted[min(max(rank, 1), n)-1]
}
