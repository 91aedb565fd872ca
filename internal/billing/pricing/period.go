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
