package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/saasbase/saasbase/internal/server/servertest"
)

// TestMetricsLabelsBounded: clients choose methods and paths, not the metric's label values.
// 100 requests with invented 60 kB methods, on known and unknown paths, leave /metrics about
// the size it was, counted under method OTHER; a path no route matches is "unmatched", never
// its raw self nor a subrouter's pattern.
func TestMetricsLabelsBounded(t *testing.T) {
	s := servertest.New(t)
	scrape := func() string {
		t.Helper()
		res := s.Get(t, "", "/metrics")
		if res.Status != http.StatusOK {
			t.Fatalf("GET /metrics: %d %s", res.Status, res.Body)
		}
		return string(res.Body)
	}
	send := func(method, path string) {
		t.Helper()
		res, err := s.TryDo(servertest.Request{Method: method, Path: path})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status >= 500 {
			t.Fatalf("%.20s… %s: %d %s", method, path, res.Status, res.Body)
		}
	}
	paths := []string{"/v1/projects", "/livez", "/nowhere-", "/v1/nowhere-", "/v1/admin/nowhere-", "/ofrep/v1/nowhere-"}
	invented := func(i int) (method, path string) {
		path = paths[i%len(paths)]
		if strings.HasSuffix(path, "-") {
			path += servertest.RandomSuffix()
		}
		return strings.Repeat("INVENTED", 60<<10/8) + servertest.RandomSuffix(), path
	}
	// A first round creates the series that every later request falls into, the scrape's too.
	for i, p := range paths {
		send(invented(i))
		send("GET", p+"x")
	}
	scrape()
	before := scrape()
	for i := range 100 {
		send(invented(i))
	}
	after := scrape()

	series := grep(after, "http_request_duration_seconds_count")
	if grown := len(after) - len(before); grown > 4<<10 {
		t.Errorf("/metrics grew by %d bytes (from %d to %d) after 100 requests with invented methods", grown, len(before), len(after))
	}
	if strings.Contains(after, "INVENTED") {
		t.Error("/metrics holds an invented method")
	}
	if strings.Contains(after, "nowhere") || strings.Contains(series, `/*"`) {
		t.Errorf("/metrics labels a path no route matched other than \"unmatched\":\n%s", series)
	}
	for _, want := range []string{`{method="OTHER",route="unmatched",status="404"}`, `{method="GET",route="unmatched",status="404"}`} {
		if !strings.Contains(series, want) {
			t.Errorf("/metrics has no series %s:\n%s", want, series)
		}
	}
}

// grep answers the lines of text that contain s, each cut to 200 bytes.
func grep(text, s string) string {
	var out []string
	for line := range strings.Lines(text) {
		if strings.Contains(line, s) {
			out = append(out, strings.TrimSpace(line[:min(len(line), 200)]))
		}
	}
	return strings.Join(out, "\n")
}
