package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/saasbase/saasbase/openapi"
)

// repoRoot is the repository's top, from this package's directory (where go test runs).
const repoRoot = "../.."

// needTool answers the path of a program a test needs that is not Go's: make test installs
// it (the debs and browser targets). Where it is missing the test skips, except in CI
// (CI=true), which must run every test.
func needTool(t *testing.T, path, install string) string {
	t.Helper()
	if filepath.IsAbs(path) {
		if _, err := os.Stat(path); err == nil {
			return path
		}
	} else if p, err := exec.LookPath(path); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing: %s (make test does)", path, install)
	}
	t.Skipf("%s is missing: %s (make test does, where it may install packages)", path, install)
	return ""
}

// browserDeps answers node, after checking that chromium and browser/'s npm packages are
// installed.
func browserDeps(t *testing.T) string {
	t.Helper()
	needTool(t, "/usr/bin/chromium", "apt-get install chromium")
	node := needTool(t, "node", "apt-get install nodejs npm")
	needTool(t, mustAbs(t, filepath.Join(repoRoot, "browser/node_modules/playwright-core/package.json")), "make browser (npm ci in browser/)")
	return node
}

func mustAbs(t *testing.T, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// docOperation is an operation of openapi.yaml as the browser test looks for it.
type docOperation struct {
	OperationID string `json:"operationId"`
	Summary     string `json:"summary"`
	Method      string `json:"method"`
	Path        string `json:"path"`
}

func describedOperations(t *testing.T) []docOperation {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openapi.Spec)
	if err != nil {
		t.Fatal(err)
	}
	var ops []docOperation
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops = append(ops, docOperation{OperationID: op.OperationID, Summary: op.Summary, Method: method, Path: path})
		}
	}
	slices.SortFunc(ops, func(a, b docOperation) int { return strings.Compare(a.Path+a.Method, b.Path+b.Method) })
	return ops
}

// TestDocsPageInBrowser opens GET /docs of a running `api serve` in Debian's chromium
// (browser/docs.mjs, through playwright-core): the page loads with no console error and no
// request leaving the service, and shows every operation of openapi.yaml under its summary,
// in the page and in the side menu. The screenshot is kept in bin/artifacts/docs.png.
func TestDocsPageInBrowser(t *testing.T) {
	node := browserDeps(t)
	ops := describedOperations(t)
	if len(ops) < 10 {
		t.Fatalf("openapi.yaml lists %d operations", len(ops))
	}
	opsFile := filepath.Join(t.TempDir(), "operations.json")
	raw, _ := json.Marshal(ops)
	if err := os.WriteFile(opsFile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	artifacts := mustAbs(t, filepath.Join(repoRoot, "bin/artifacts"))
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(artifacts, "docs.png")
	os.Remove(shot)

	s := migratedService(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "docs.mjs", s.url+"/docs", opsFile, shot)
	cmd.Dir = filepath.Join(repoRoot, "browser")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var got struct {
		Title      string
		Operations int
		Shown      int
		Problems   []string
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &got); err != nil {
		t.Fatalf("node docs.mjs: %v; stdout:\n%s\nstderr:\n%s", runErr, stdout.String(), stderr.String())
	}
	for _, p := range got.Problems {
		t.Error(p)
	}
	if runErr != nil && len(got.Problems) == 0 {
		t.Errorf("node docs.mjs: %v\n%s", runErr, stderr.String())
	}
	if got.Operations != len(ops) || got.Shown != len(ops) {
		t.Errorf("the page shows %d of the %d operations", got.Shown, len(ops))
	}
	if !strings.HasPrefix(got.Title, "saasbase API") {
		t.Errorf("the page's title is %q", got.Title)
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() == 0 {
		t.Errorf("no screenshot at %s: %v", shot, err)
	} else {
		t.Logf("%d operations shown; screenshot: %s", got.Shown, shot)
	}
}

// TestRedocVendored: the bundle embedded in the binary is the one of the redoc version
// browser/package-lock.json pins (openapi/docs/README.md says how to move it).
func TestRedocVendored(t *testing.T) {
	browserDeps(t)
	vendored, err := os.ReadFile(filepath.Join(repoRoot, "openapi/docs/redoc.standalone.js"))
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := os.ReadFile(filepath.Join(repoRoot, "browser/node_modules/redoc/bundles/redoc.standalone.js"))
	if err != nil {
		t.Fatalf("%v (make browser installs it)", err)
	}
	if !bytes.Equal(vendored, pinned) {
		t.Error("openapi/docs/redoc.standalone.js differs from the redoc that browser/package-lock.json pins; see openapi/docs/README.md")
	}
}
