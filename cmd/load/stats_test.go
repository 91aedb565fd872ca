package main

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(n int) []time.Duration { // 1ms, 2ms, ..., n ms
		d := make([]time.Duration, n)
		for i := range d {
			d[i] = time.Duration(i+1) * time.Millisecond
		}
		return d
	}
	tests := []struct {
		n, permille int
		want        time.Duration
	}{
		{0, 500, 0},
		{1, 500, 1 * time.Millisecond},
		{1, 999, 1 * time.Millisecond},
		{2, 500, 1 * time.Millisecond}, // nearest rank: ceil(0.5*2) = 1
		{3, 500, 2 * time.Millisecond},
		{100, 990, 99 * time.Millisecond},
		{1000, 999, 999 * time.Millisecond}, // where floating point would pick 1000
		{1000, 1000, 1000 * time.Millisecond},
		{10, 999, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(ms(tt.n), tt.permille); got != tt.want {
			t.Errorf("percentile(1..%dms, %d‰) = %v, want %v", tt.n, tt.permille, got, tt.want)
		}
	}
}

func TestRouteNaming(t *testing.T) {
	tests := []struct {
		r                     route
		params                []string
		method, pattern, path string
	}{
		{routeListProjects, nil, "GET", "/v1/projects", "/v1/projects"},
		{routeFlood, nil, "GET", "/v1/projects", "/v1/projects"},
		{routeGetProject, []string{"0190a6b2-7c1e-7000-8000-000000000001"}, "GET", "/v1/projects/{id}",
			"/v1/projects/0190a6b2-7c1e-7000-8000-000000000001"},
		{routePaymentReplay, nil, "POST", "/v1/payments", "/v1/payments"},
		{routeBareProject, []string{"t", "a/b"}, "GET", "/projects/{tenant}/{id}", "/projects/t/a%2Fb"},
	}
	for _, tt := range tests {
		if got := tt.r.method(); got != tt.method {
			t.Errorf("%q.method() = %q, want %q", tt.r, got, tt.method)
		}
		if got := tt.r.pattern(); got != tt.pattern {
			t.Errorf("%q.pattern() = %q, want %q", tt.r, got, tt.pattern)
		}
		if got := tt.r.path(tt.params...); got != tt.path {
			t.Errorf("%q.path(%q) = %q, want %q", tt.r, tt.params, got, tt.path)
		}
	}
}

func TestRoutePathParamCount(t *testing.T) {
	for _, params := range [][]string{nil, {"a", "b"}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%q.path(%q) did not panic", routeGetProject, params)
				}
			}()
			routeGetProject.path(params...)
		}()
	}
}

func TestRecorder(t *testing.T) {
	rec := newRecorder()
	for _, a := range []struct {
		r      route
		status int
		code   string
	}{
		{routeGetProject, 200, ""},
		{routeGetProject, 404, ""},
		{routeGetProject, 429, "rate_limited"},
		{routeGetProject, 429, "quota_exceeded"},
		{routeGetProject, 429, ""}, // not a problem body: a plain 4xx
		{routeGetProject, 503, "internal"},
		{routeListProjects, 201, ""},
		{routeListProjects, 302, ""},
	} {
		rec.record(a.r, a.status, a.code, time.Millisecond)
	}
	rec.fail(routeGetProject)
	var nilRec *recorder
	nilRec.record(routeGetProject, 200, "", time.Millisecond) // setup's: records nothing

	rows, total := rec.summaries(time.Second)
	if len(rows) != 2 || rows[0].name != string(routeListProjects) || rows[1].name != string(routeGetProject) {
		t.Fatalf("rows = %+v, want GET /v1/projects then GET /v1/projects/{id}", rows)
	}
	want := counts{requests: 7, ok: 1, clientErr: 2, rateLimited: 1, quotaExceeded: 1, serverErr: 1, transport: 1}
	if rows[1].counts != want {
		t.Errorf("GET /v1/projects/{id} counts = %+v, want %+v", rows[1].counts, want)
	}
	if total.requests != 9 || total.rate != 9 || total.failed() != 2 {
		t.Errorf("total = %+v, want 9 requests at 9/s, 2 failed", total)
	}
	if n, throttled, failed := rec.progress(); n != 9 || throttled != 3 || failed != 2 {
		t.Errorf("progress() = %d, %d, %d, want 9, 3, 2", n, throttled, failed)
	}
	if notes := rec.noteLines(); len(notes) != 1 || notes[0] != "GET /v1/projects answered 302 (1×)" {
		t.Errorf("notes = %q", notes)
	}
}

func TestMixSkipsActionsTurnedOff(t *testing.T) {
	var hits [3]int
	tr := &traffic{}
	m := mix{
		{weight: 1},
		{weight: 98, off: &tr.noOFREP},
		{weight: 1},
	}
	tr.noOFREP.Store(true)
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		a := m.pick(r)
		for i := range m {
			if a == &m[i] {
				hits[i]++
			}
		}
	}
	if hits[1] != 0 || hits[0] < 400 || hits[2] < 400 {
		t.Errorf("picks = %v, want none of the action turned off and the rest shared evenly", hits)
	}
}
