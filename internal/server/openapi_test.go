package server_test

import (
	"bytes"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/saasbase/saasbase/internal/server/servertest"
	"github.com/saasbase/saasbase/openapi"
)

// oapiAllMethods are the methods chi registers for a route added with Handle or HandleFunc:
// such a route answers any method.
var oapiAllMethods = []string{"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}

// oapiServed maps each pattern the router serves to its methods; "*" stands for a route that
// answers every method (registered with Handle).
func oapiServed(t *testing.T, s *servertest.Server) map[string][]string {
	t.Helper()
	served := map[string][]string{}
	for _, r := range s.WalkRoutes(t) {
		served[r.Pattern] = append(served[r.Pattern], r.Method)
	}
	for p, methods := range served {
		all := true
		for _, m := range oapiAllMethods {
			all = all && slices.Contains(methods, m)
		}
		if all {
			served[p] = []string{"*"}
		}
	}
	if len(served) == 0 {
		t.Fatal("chi.Walk found no routes")
	}
	return served
}

// TestOpenAPIDescribesEveryRoute: every method and pattern the router serves is an operation
// of openapi.yaml, under the same path template.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	s := servertest.New(t)
	spec, _ := servertest.Spec(t)
	served := oapiServed(t, s)
	patterns := make([]string, 0, len(served))
	for p := range served {
		patterns = append(patterns, p)
	}
	sort.Strings(patterns)
	for _, p := range patterns {
		item := spec.Paths.Value(p)
		if item == nil {
			t.Errorf("%v %s is served but openapi.yaml has no path %s", served[p], p, p)
			continue
		}
		for _, m := range served[p] {
			if m == "*" {
				// A catch-all route: the spec must say what it is for, at least its GET.
				if item.GetOperation(http.MethodGet) == nil {
					t.Errorf("%s answers every method but openapi.yaml describes no GET for it", p)
				}
				continue
			}
			if item.GetOperation(m) == nil {
				t.Errorf("%s %s is served but openapi.yaml describes no %s operation for %s", m, p, m, p)
			}
		}
	}
}

// TestOpenAPIEveryOperationServed: every operation of openapi.yaml has a route.
func TestOpenAPIEveryOperationServed(t *testing.T) {
	s := servertest.New(t)
	spec, _ := servertest.Spec(t)
	served := oapiServed(t, s)
	n := 0
	for _, path := range spec.Paths.InMatchingOrder() {
		for method := range spec.Paths.Value(path).Operations() {
			n++
			methods, ok := served[path]
			if !ok {
				t.Errorf("openapi.yaml describes %s %s, but the router serves no %s", method, path, path)
				continue
			}
			if !slices.Contains(methods, method) && !slices.Contains(methods, "*") {
				t.Errorf("openapi.yaml describes %s %s, but the router serves only %v there", method, path, methods)
			}
		}
	}
	if n == 0 {
		t.Fatal("openapi.yaml has no operations")
	}
}

// TestOpenAPIServed: GET /openapi.yaml answers the embedded document as YAML.
func TestOpenAPIServed(t *testing.T) {
	s := servertest.New(t)
	res := s.Do(t, servertest.Request{Method: "GET", Path: "/openapi.yaml"})
	if res.Status != http.StatusOK {
		t.Fatalf("GET /openapi.yaml: %d %s", res.Status, res.Body)
	}
	mt, _, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if err != nil || mt != "application/yaml" {
		t.Errorf("GET /openapi.yaml: Content-Type %q, want application/yaml", res.Header.Get("Content-Type"))
	}
	if !bytes.Equal(res.Body, openapi.Spec) {
		t.Errorf("GET /openapi.yaml: %d bytes that differ from the embedded openapi.yaml (%d bytes)", len(res.Body), len(openapi.Spec))
	}
	if !strings.HasPrefix(string(res.Body), "openapi: 3.1") {
		t.Errorf("GET /openapi.yaml does not start with the OpenAPI 3.1 version: %.40q", res.Body)
	}
}
