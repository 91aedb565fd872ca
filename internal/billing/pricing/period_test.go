package pricing

import (
	"testing"
	"time"
)

func TestPeriodAt(t *testing.T) {
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	utc := time.UTC
	d := func(s string) time.Time { t, _ := time.Parse(time.RFC3339Nano, s); return t }
	cases := []struct {
		name        string
		created, at string
		loc         *time.Location
		start, end  string
	}{
		{"mid-month", "2026-01-15T10:00:00Z", "2026-03-20T00:00:00Z", utc, "2026-03-15T00:00:00Z", "2026-04-15T00:00:00Z"},
		{"end - 1µs is in the old period", "2026-01-15T10:00:00Z", "2026-04-14T23:59:59.999999Z", utc, "2026-03-15T00:00:00Z", "2026-04-15T00:00:00Z"},
		{"end is in the new period", "2026-01-15T10:00:00Z", "2026-04-15T00:00:00Z", utc, "2026-04-15T00:00:00Z", "2026-05-15T00:00:00Z"},
		{"a 31st clamps in February", "2026-01-31T08:00:00Z", "2026-02-28T12:00:00Z", utc, "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"},
		{"and returns to the 31st", "2026-01-31T08:00:00Z", "2026-03-31T00:00:00Z", utc, "2026-03-31T00:00:00Z", "2026-04-30T00:00:00Z"},
		{"leap February", "2028-01-30T00:00:00Z", "2028-02-29T10:00:00Z", utc, "2028-02-29T00:00:00Z", "2028-03-30T00:00:00Z"},
		// Kolkata is +05:30: its month starts at 18:30 UTC the day before.
		{"Asia/Kolkata", "2026-01-01T00:00:00+05:30", "2026-03-01T00:00:00Z", kolkata, "2026-02-28T18:30:00Z", "2026-03-31T18:30:00Z"},
		{"Asia/Kolkata, 1µs before", "2026-01-01T00:00:00+05:30", "2026-02-28T18:29:59.999999Z", kolkata, "2026-01-31T18:30:00Z", "2026-02-28T18:30:00Z"},
	}
	for _, c := range cases {
		p := PeriodAt(d(c.created), c.loc, d(c.at))
		if !p.Start.Equal(d(c.start)) || !p.End.Equal(d(c.end)) {
			t.Errorf("%s: [%s, %s), want [%s, %s)", c.name, p.Start, p.End, c.start, c.end)
		}
	}
}

func TestNextPeriod(t *testing.T) {
	created := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC) // the 10th in all three zones
	plus11, minus11 := time.FixedZone("UTC+11", 11*3600), time.FixedZone("UTC-11", -11*3600)
	d := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	cases := []struct {
		name  string
		loc   *time.Location
		start string
		end   string
	}{
		{"same zone: the next boundary", time.UTC, "2026-02-10T00:00:00Z", "2026-03-10T00:00:00Z"},
		{"from UTC to a zone ahead: its boundary came 11 h early, so the next one", plus11, "2026-02-10T00:00:00Z", "2026-03-09T13:00:00Z"},
		{"from UTC to a zone behind: its boundary is 11 h away, a sliver merged into the next", minus11, "2026-02-10T00:00:00Z", "2026-03-10T11:00:00Z"},
		{"from ahead to behind: 22 h away, merged", minus11, "2026-02-09T13:00:00Z", "2026-03-10T11:00:00Z"},
	}
	for _, c := range cases {
		p := NextPeriod(created, c.loc, d(c.start))
		if !p.Start.Equal(d(c.start)) || !p.End.Equal(d(c.end)) {
			t.Errorf("%s: [%s, %s), want [%s, %s)", c.name, p.Start, p.End, c.start, c.end)
		}
	}
}
