// Package prometheus holds no code: its test runs promtool over the alerting rules and the
// compose Prometheus configuration beside it.
package prometheus

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// promtool finds Debian's promtool (package prometheus; make test installs it). Where it is
// missing the test skips, except in CI, which must run it.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found: install Debian's package prometheus (.ci/run does)")
		}
		t.Skip("promtool not found: `apt-get install prometheus` (make test does, as root) to test the alerting rules")
	}
	return path
}

// TestAlertRules runs alerts_test.yml: every alert fires when its condition holds long
// enough, and not before nor for the case beside it that must stay quiet.
func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

// TestComposeConfig checks the configuration docker compose mounts into Prometheus. Its
// rule_files path is the container's, so the check runs on a copy pointing here.
func TestComposeConfig(t *testing.T) {
	bin := promtool(t)
	raw, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rules, err := filepath.Abs("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	local := strings.ReplaceAll(string(raw), "/etc/prometheus/alerts.yml", rules)
	if err := os.WriteFile(dir+"/prometheus.yml", []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "config", dir+"/prometheus.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
}
