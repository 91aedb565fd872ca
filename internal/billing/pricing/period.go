package pricing

import "time"

// Period is a half-open billing period [Start, End).
type Period struct {
	Start time.Time `json:"period_start"`
	End   time.Time `json:"period_end"`
}

// PeriodAt answers the monthly period containing t for a tenant created at created, in its
// time zone loc. Periods start at local midnight on the day of the month the tenant was
// created; in shorter months a 29th, 30th or 31st clamps to the month's last day.
func PeriodAt(created time.Time, loc *time.Location, t time.Time) Period {
	day := created.In(loc).Day()
	local := t.In(loc)
	start := periodStart(local.Year(), local.Month(), day, loc)
	if start.After(t) {
		start = periodStart(local.Year(), local.Month()-1, day, loc)
	}
	next := start.In(loc)
	end := periodStart(next.Year(), next.Month()+1, day, loc)
	return Period{Start: start.UTC(), End: end.UTC()}
}

// periodStart is local midnight of day (clamped) in year/month; month may be out of range.
func periodStart(year int, month time.Month, day int, loc *time.Location) time.Time {
	first := time.Date(year, month, 1, 0, 0, 0, 0, loc)
	last := first.AddDate(0, 1, -1).Day()
	return time.Date(first.Year(), first.Month(), min(day, last), 0, 0, 0, 0, loc)
}

// minPeriod is the shortest period NextPeriod makes. A change of time zone moves the next
// boundary by at most 26 hours; a period ending that soon after it began is merged into the
// one after, so that a tenant is never charged a base fee for a sliver.
const minPeriod = 7 * 24 * time.Hour

// NextPeriod answers the period that begins at start, for a tenant created at created whose
// time zone is now loc: it ends at the first boundary of loc's periods after start (start may
// be a boundary of another zone, when the tenant changed its own), or at the one after that
// if the first is less than a week away. Chained from the first period, the periods cover
// every instant once, whatever zones the tenant moves through.
func NextPeriod(created time.Time, loc *time.Location, start time.Time) Period {
	end := PeriodAt(created, loc, start).End
	if end.Sub(start) < minPeriod {
		end = PeriodAt(created, loc, end).End
	}
	return Period{Start: start.UTC(), End: end.UTC()}
}
