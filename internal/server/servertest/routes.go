package servertest

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

// Route is one method and pattern that the service's chi router serves.
type Route struct {
	Method  string
	Pattern string // chi's pattern with regexps dropped: /v1/projects/{id}
}

func (r Route) String() string { return r.Method + " " + r.Pattern }

var chiParamRegexp = regexp.MustCompile(`\{([^}:]+):[^}]*\}`)

// WalkRoutes lists every method and pattern the service's router serves, sorted.
func (s *Server) WalkRoutes(t testing.TB) []Route {
	t.Helper()
	routes, ok := s.App.Handler().(chi.Routes)
	if !ok {
		t.Fatalf("the service's handler is a %T, not a chi router", s.App.Handler())
	}
	var out []Route
	err := chi.Walk(routes, func(method, pattern string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, Route{Method: method, Pattern: chiParamRegexp.ReplaceAllString(pattern, "{$1}")})
		return nil
	})
	if err != nil {
		t.Fatalf("chi.Walk: %v", err)
	}
	slices.SortFunc(out, func(a, b Route) int {
		return strings.Compare(a.String(), b.String())
	})
	return slices.Compact(out)
}
