// Package promtest runs a real Prometheus (Debian's package prometheus) for tests: it scrapes
// the targets a test names every second, evaluates deploy/prometheus/alerts.yml every second,
// and answers queries through its HTTP API, so a test sees the service's metrics and alerts
// as an operator's Prometheus does.
package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/saasbase/saasbase/internal/platform/proctest"
)

// Job is the scrape job's name, the one deploy/prometheus/prometheus.yml gives the service.
const Job = "saasbase"

// Prometheus is a running Prometheus.
type Prometheus struct {
	URL    string // its HTTP API, http://127.0.0.1:port
	output *proctest.Output
}

// Binary answers the prometheus binary, or skips the test where it is missing (make test
// installs it), except in CI (CI=true), which must run the test.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus is missing: apt-get install prometheus (make test and .ci/run do)")
		}
		t.Skip("prometheus is missing: apt-get install prometheus (make test does, where it may install packages)")
	}
	return path
}

// Start runs Prometheus scraping targets (host:port, path /metrics) every second as job Job,
// with the rule files given (absolute paths; none is fine), on a free port and a storage
// directory of its own, and waits until it is ready. It is stopped when the test ends.
func Start(t testing.TB, targets []string, rules ...string) *Prometheus {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	quoted := func(list []string) string {
		b, _ := json.Marshal(list) // a JSON list is a YAML flow sequence
		return string(b)
	}
	if rules == nil {
		rules = []string{}
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files: %s
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: %s
`, quoted(rules), Job, quoted(targets))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := proctest.FreeAddr(t)
	p := &Prometheus{URL: "http://" + addr, output: &proctest.Output{}}
	cmd := exec.Command(bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = p.output, p.output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", p.output.String())
		}
	})
	p.WaitFor(t, 30*time.Second, "prometheus ready", func() (bool, string) {
		select {
		case <-done:
			t.Fatalf("prometheus exited:\n%s", p.output.String())
		default:
		}
		res, err := http.Get(p.URL + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK, res.Status
	})
	return p
}

// WaitFor calls check until it reports done, failing the test after deadline with check's
// last word.
func (p *Prometheus) WaitFor(t testing.TB, deadline time.Duration, what string, check func() (bool, string)) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		ok, last := check()
		if ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s; last: %s", what, deadline, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Sample is one series of an instant query's answer.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query runs an instant PromQL query through the HTTP API.
func (p *Prometheus) Query(t testing.TB, expr string) []Sample {
	t.Helper()
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	p.get(t, "/api/v1/query?query="+url.QueryEscape(expr), &data)
	if data.ResultType != "vector" {
		t.Fatalf("query %s: a %s, want a vector", expr, data.ResultType)
	}
	out := make([]Sample, 0, len(data.Result))
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("query %s: value %v: %v", expr, r.Value[1], err)
		}
		out = append(out, Sample{Labels: r.Metric, Value: v})
	}
	return out
}

// Alert is an alert as /api/v1/alerts lists it.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"` // pending or firing
}

// Alerts lists the pending and firing alerts.
func (p *Prometheus) Alerts(t testing.TB) []Alert {
	t.Helper()
	var data struct {
		Alerts []Alert `json:"alerts"`
	}
	p.get(t, "/api/v1/alerts", &data)
	return data.Alerts
}

// Rule is an alerting rule as /api/v1/rules lists it, with the health of its last
// evaluation.
type Rule struct {
	Name      string `json:"name"`
	Query     string `json:"query"`
	Health    string `json:"health"` // ok, err or unknown (not evaluated yet)
	LastError string `json:"lastError"`
}

// Rules lists the alerting rules loaded.
func (p *Prometheus) Rules(t testing.TB) []Rule {
	t.Helper()
	var data struct {
		Groups []struct {
			Rules []Rule `json:"rules"`
		} `json:"groups"`
	}
	p.get(t, "/api/v1/rules?type=alert", &data)
	var out []Rule
	for _, g := range data.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// MetricNames lists the names of every series Prometheus holds.
func (p *Prometheus) MetricNames(t testing.TB) []string {
	t.Helper()
	var names []string
	p.get(t, "/api/v1/label/__name__/values", &names)
	return names
}

func (p *Prometheus) get(t testing.TB, path string, data any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", p.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("prometheus GET %s: %v", path, err)
	}
	defer res.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("prometheus GET %s: %d: %v", path, res.StatusCode, err)
	}
	if body.Status != "success" {
		t.Fatalf("prometheus GET %s: %s", path, body.Error)
	}
	if err := json.Unmarshal(body.Data, data); err != nil {
		t.Fatalf("prometheus GET %s: %v", path, err)
	}
}

// MetricNamesIn answers the metric names a PromQL expression reads: its identifiers that are
// neither functions, keywords, label names (inside {} or a by/without/on/ignoring list) nor
// durations. Enough for the project's own rules and dashboard, not a PromQL parser.
func MetricNamesIn(expr string) []string {
	var names []string
	seen := map[string]bool{}
	keywords := map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true,
		// aggregations, which may be followed by by (...) before their parentheses
		"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
		"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true}
	// Drop what is inside {}, [] and the parentheses after by/without/on/ignoring.
	var b strings.Builder
	depth := 0
	for i := 0; i < len(expr); i++ {
		switch c := expr[i]; {
		case c == '"':
			j := strings.IndexByte(expr[i+1:], '"')
			if j < 0 {
				i = len(expr)
			} else {
				i += j + 1
			}
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		case depth == 0:
			b.WriteByte(c)
		}
	}
	s := b.String()
	isWord := func(c byte) bool {
		return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	for i := 0; i < len(s); {
		if !isWord(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isWord(s[j]) {
			j++
		}
		word := s[i:j]
		rest := strings.TrimLeft(s[j:], " \t\n")
		switch {
		case word[0] >= '0' && word[0] <= '9', keywords[strings.ToLower(word)] && !strings.HasPrefix(rest, "("):
		case strings.HasPrefix(rest, "("):
			if w := strings.ToLower(word); w == "by" || w == "without" || w == "on" || w == "ignoring" || w == "group_left" || w == "group_right" {
				j += len(s[j:]) - len(rest) + strings.IndexByte(rest, ')') + 1 // skip the label list
			}
			// else a function
		default:
			if !seen[word] {
				seen[word] = true
				names = append(names, word)
			}
		}
		i = j
	}
	return names
}
