package ratelimit

import (
	"testing"
	"time"

	"github.com/saasbase/saasbase/internal/platform/clock"
)

func TestBreaker(t *testing.T) {
	clk := clock.NewFixed(time.Now())
	var changes []bool
	b := &breaker{clock: clk, threshold: 3, cooldown: time.Second, onChange: func(open bool) { changes = append(changes, open) }}

	b.failure()
	b.failure()
	b.success() // a success breaks the run
	b.failure()
	b.failure()
	if !b.allow() || b.isOpen() {
		t.Fatal("opened before three failures in a row")
	}
	b.failure()
	if b.allow() || !b.isOpen() {
		t.Fatal("still closed after three failures in a row")
	}

	clk.Advance(999 * time.Millisecond)
	if b.allow() {
		t.Fatal("probed before the cooldown")
	}
	clk.Advance(time.Millisecond)
	if !b.allow() {
		t.Fatal("no probe after the cooldown")
	}
	if b.allow() {
		t.Fatal("a second call went through while the probe is out")
	}
	b.failure() // the probe failed: another cooldown
	if b.allow() {
		t.Fatal("called Redis right after a failed probe")
	}

	clk.Advance(time.Second)
	if !b.allow() {
		t.Fatal("no probe after the second cooldown")
	}
	b.abandon() // the probe's caller left: the next call probes
	if !b.allow() {
		t.Fatal("no probe after an abandoned one")
	}
	b.success()
	if !b.allow() || b.isOpen() {
		t.Fatal("a successful probe did not close the circuit")
	}
	if len(changes) != 2 || !changes[0] || changes[1] {
		t.Fatalf("state changes %v, want [open closed]", changes)
	}
}

func TestLocalMatchesTheScript(t *testing.T) {
	clk := clock.NewFixed(time.Unix(1_700_000_000, 0))
	lc := newLocal(clk)
	l := &Limiter{opts: Options{Prefix: "p:"}}
	lim := Limit{Scope: "t:x", Policy: "tenant", Rate: 2, Burst: 3, MaxConcurrent: 2}
	c, err := l.prepare([]Limit{lim})
	if err != nil {
		t.Fatal(err)
	}
	decide := func() Decision { return c.decide(lc.decide(c)) }

	for i, want := range []int64{2, 1} {
		d := decide()
		if !d.Allowed || d.Remaining != want {
			t.Fatalf("request %d: %+v, want allowed with %d left", i+1, d, want)
		}
	}
	if d := decide(); d.Allowed || d.Policy != "tenant.concurrency" {
		t.Fatalf("third in flight: %+v, want denied by the cap", d)
	}
	lc.release(lim.Scope, c.concKeys())
	if d := decide(); !d.Allowed || d.Remaining != 0 || d.ResetAfter != 500*time.Millisecond {
		t.Fatalf("after a release: %+v, want allowed, none left, next in 500ms", d)
	}
	lc.release(lim.Scope, c.concKeys())
	if d := decide(); d.Allowed || d.Policy != "tenant" || d.RetryAfter != 500*time.Millisecond {
		t.Fatalf("bucket empty: %+v, want denied by tenant, retry in 500ms", d)
	}
	clk.Advance(500 * time.Millisecond)
	if d := decide(); !d.Allowed {
		t.Fatalf("after the refill: %+v", d)
	}

	// A lowered burst empties the bucket, which then refills at its rate.
	lim.Burst, lim.MaxConcurrent = 1, 0
	c, _ = l.prepare([]Limit{lim})
	if d := decide(); d.Allowed || d.RetryAfter != 500*time.Millisecond {
		t.Fatalf("lowered burst: %+v, want denied for one interval", d)
	}
	clk.Advance(500 * time.Millisecond)
	if d := decide(); !d.Allowed {
		t.Fatalf("lowered burst, one interval later: %+v", d)
	}
}

func TestViewIsExact(t *testing.T) {
	p := params{interval: 1_000_000, burst: 5, cost: 1}
	cases := []struct {
		used      int64
		spent     bool
		remaining int64
		wait      int64
	}{
		{0, true, 4, 0},
		{4_000_000, true, 0, 1_000_000},
		{4_000_001, false, 0, 1}, // one µs short of a token
		{3_999_999, false, 1, 0}, // one µs past one
		{5_000_000, false, 0, 1_000_000},
	}
	for _, c := range cases {
		v := p.viewOf(c.used, c.spent)
		if v.remaining != c.remaining || v.wait != c.wait {
			t.Errorf("viewOf(%d, %t) = %+v, want remaining %d wait %d", c.used, c.spent, v, c.remaining, c.wait)
		}
	}
}
