package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/saasbase/saasbase/internal/billing/stripetest"
)

// A step of the README's session: a shell command and the answer its `# → ` lines show.
type sessionStep struct {
	line    int    // in README.md, where the command starts
	command string // as written, continuation lines included
	want    string // the `# → ` lines joined; "" when the README shows no answer
}

// readmeSession parses the fenced sh blocks of the README's "A first session", up to the next
// heading. A command runs to the first line that does not end in a backslash; the `# → `
// lines after it are its answer, where `…` stands for any text; other comments are prose.
func readmeSession(t *testing.T, readme string) []sessionStep {
	t.Helper()
	lines := strings.Split(readme, "\n")
	start := -1
	for i, l := range lines {
		if l == "## A first session" {
			start = i + 1
			break
		}
	}
	if start < 0 {
		t.Fatal(`README.md has no "## A first session"`)
	}
	var steps []sessionStep
	inBlock, continued := false, false
	for i := start; i < len(lines); i++ {
		l := lines[i]
		switch {
		case !inBlock && strings.HasPrefix(l, "#"):
			return steps // the next heading ends the session
		case !inBlock:
			inBlock = l == "```sh"
		case l == "```":
			inBlock, continued = false, false
		case continued:
			steps[len(steps)-1].command += "\n" + l
			continued = strings.HasSuffix(l, `\`)
		case strings.HasPrefix(l, "# → "):
			if len(steps) == 0 {
				t.Fatalf("README.md:%d: an answer before any command", i+1)
			}
			steps[len(steps)-1].want += strings.TrimPrefix(l, "# → ") + "\n"
		case strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#"):
		default:
			steps = append(steps, sessionStep{line: i + 1, command: l})
			continued = strings.HasSuffix(l, `\`)
		}
	}
	return steps
}

// withoutSpace drops every white space: the README shows answers as one line, jq prints them
// indented, and curl -i ends header lines with CRLF.
func withoutSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

// matchAnswer reports whether got matches want, with white space ignored and each … in want
// standing for any text.
func matchAnswer(want, got string) bool {
	parts := strings.Split(withoutSpace(want), "…")
	got = withoutSpace(got)
	if !strings.HasPrefix(got, parts[0]) {
		return false
	}
	got = got[len(parts[0]):]
	last := len(parts) - 1
	if last == 0 {
		return got == ""
	}
	for _, p := range parts[1:last] {
		i := strings.Index(got, p)
		if i < 0 {
			return false
		}
		got = got[i+len(p):]
	}
	return strings.HasSuffix(got, parts[last])
}

func TestMatchAnswer(t *testing.T) {
	for _, c := range []struct {
		want, got string
		ok        bool
	}{
		{`{"a": 1}`, "{\n  \"a\": 1\n}\n", true},
		{`{"a": 1}`, `{"a": 2}`, false},
		{`{"a": 1}`, `{"a": 1, "b": 2}`, false},
		{`{"id": "…", "a": 1, …}`, `{"id":"x-1","a":1,"b":2}`, true},
		{`{"id": "…", "a": 1, …}`, `{"id":"x-1","a":10,"b":2}`, false},
		{`HTTP/1.1 201 Created …`, "HTTP/1.1 201 Created\r\nDate: x\r\n\r\n{}", true},
		{`HTTP/1.1 201 Created …`, "HTTP/1.1 409 Conflict\r\n\r\n{}", false},
		{`3`, "3\n", true},
		{`3`, "33\n", false},
	} {
		if got := matchAnswer(c.want, c.got); got != c.ok {
			t.Errorf("matchAnswer(%q, %q) = %v, want %v", c.want, c.got, got, c.ok)
		}
	}
}

// TestREADMESession runs the README's first session, its commands in order in one bash (as a
// reader pastes them), against the service as `make run` starts it (migrate up, then serve,
// with stripe-mock for payments) on a port and database of its own; localhost:8080 and
// bin/api in the commands are that service and this binary. Each command must succeed and
// print the answer the README shows under it.
func TestREADMESession(t *testing.T) {
	bash := needTool(t, "bash", "apt-get install bash")
	needTool(t, "curl", "apt-get install curl")
	needTool(t, "jq", "apt-get install jq")
	raw, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	steps := readmeSession(t, string(raw))
	answers := 0
	for _, s := range steps {
		if s.want != "" {
			answers++
		}
	}
	if len(steps) < 10 || answers < 8 {
		t.Fatalf("README.md's session has %d commands, %d with an answer: not the session this test knows", len(steps), answers)
	}

	s := migratedService(t, map[string]string{
		"STRIPE_SECRET_KEY": "sk_test_local", "STRIPE_API_URL": stripetest.StartMock(t),
	})
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// bin/api is this test binary, which acts as the command (runMainEnv) with the service's
	// environment, as `make run`'s bin/api does.
	api := filepath.Join(dir, "api")
	if err := os.WriteFile(api, fmt.Appendf(nil, "#!/bin/sh\nexec '%s' \"$@\"\n", exe), 0o755); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(s.url, "http://")
	var script strings.Builder
	script.WriteString("set -uo pipefail\n")
	for i, st := range steps {
		cmd := strings.ReplaceAll(st.command, "localhost:8080", host)
		cmd = strings.ReplaceAll(cmd, "bin/api", api)
		fmt.Fprintf(&script, "{\n%s\n} >%s/out.%d 2>%s/err.%d\necho $? >%s/rc.%d\n", cmd, dir, i, dir, i, dir, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := command(ctx, s.env, "-c", script.String())
	run.Path, run.Args = bash, []string{"bash", "-c", script.String()}
	run.Dir = dir
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}

	t.Logf("README.md's session: %d commands, %d answers checked", len(steps), answers)
	for i, st := range steps {
		read := func(name string) string {
			b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%s.%d", name, i)))
			return string(b)
		}
		rc, out := strings.TrimSpace(read("rc")), read("out")
		switch {
		case rc != "0":
			t.Errorf("README.md:%d: exit status %s\n%s\nstdout: %s\nstderr: %s", st.line, rc, st.command, out, read("err"))
		case st.want != "" && !matchAnswer(st.want, out):
			t.Errorf("README.md:%d: the answer differs from the README's\n%s\nREADME: %s\ngot:    %s", st.line, st.command, st.want, out)
		}
	}
}
