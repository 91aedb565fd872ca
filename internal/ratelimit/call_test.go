package ratelimit

import "testing"

// A call fails closed when any of its limits does, by its own choice or by the default.
func TestFailureModeOfACall(t *testing.T) {
	lim := func(policy string, mode FailureMode) Limit {
		return Limit{Scope: "t:x", Policy: policy, Rate: 1, Burst: 1, Failure: mode}
	}
	cases := []struct {
		name     string
		def      FailureMode
		limits   []Limit
		closedBy int
	}{
		{"open by default", FailOpen, []Limit{lim("a", FailDefault), lim("b", FailOpen)}, -1},
		{"one limit closed", FailOpen, []Limit{lim("a", FailDefault), lim("b", FailClosed)}, 1},
		{"closed by default", FailClosed, []Limit{lim("a", FailOpen), lim("b", FailDefault)}, 1},
		{"open by choice", FailClosed, []Limit{lim("a", FailOpen), lim("b", FailOpen)}, -1},
	}
	for _, c := range cases {
		l := &Limiter{opts: Options{FailureMode: c.def}}
		call, err := l.prepare(c.limits)
		if err != nil {
			t.Fatal(err)
		}
		if call.closedBy != c.closedBy {
			t.Errorf("%s: closed by limit %d, want %d", c.name, call.closedBy, c.closedBy)
		}
	}
}
