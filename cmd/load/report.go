package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// writeTable prints the rows as aligned columns. Latencies are in milliseconds, all in one
// unit so the eye can compare down a column.
func writeTable(w io.Writer, rows ...summary) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tREQS\tREQ/S\tP50 ms\tP99 ms\tP99.9 ms\t2XX\t4XX\t429 RATE\t429 QUOTA\t5XX\tERR")
	for _, s := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n",
			s.name, s.requests, s.rate, ms(s.p50), ms(s.p99), ms(s.p999),
			s.ok, s.clientErr, s.rateLimited, s.quotaExceeded, s.serverErr, s.transport)
	}
	return tw.Flush()
}

// writeComparison prints the baseline rounds' outcome.
func writeComparison(w io.Writer, c comparison, workers int) {
	fmt.Fprintf(w, "\nbaseline: GET /v1/projects/{id} only, %d alternating rounds of %s, %d workers\n\n",
		baselineRounds, baselineRound, workers)
	writeTable(w, c.bare, c.service)
	fmt.Fprintf(w, "\nservice/bare: %.2fx (of 2xx req/s; the target is at least 0.75x)\n", c.ratio)
	writeCPU(w, c.serviceCPU, c.bareCPU, c.service.ok, c.bare.ok)
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond))
}

// failureRate is the share of requests that failed (5xx or no answer), in percent.
func failureRate(c counts) float64 {
	if c.requests == 0 {
		return 0
	}
	return 100 * float64(c.failed()) / float64(c.requests)
}
