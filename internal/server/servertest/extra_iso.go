package servertest

import (
	"encoding/json"
	"net/http"
	"net/url"
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

// ListAll GETs every page of a list endpoint as token and answers all of its items. path may
// carry a query of its own; limit and cursor are added.
func (s *Server) ListAll(t testing.TB, token, path string) []json.RawMessage {
	t.Helper()
	var all []json.RawMessage
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	cursor := ""
	for page := 0; ; page++ {
		if page == 1000 {
			t.Fatalf("GET %s: more than 1000 pages; is next_cursor stuck?", path)
		}
		p := path + sep + "limit=200"
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		res := s.Do(t, Request{Method: "GET", Path: p, Token: token})
		if res.Status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, res.Status, res.Body)
		}
		var out struct {
			Data       []json.RawMessage `json:"data"`
			NextCursor *string           `json:"next_cursor"`
		}
		res.Decode(t, &out)
		all = append(all, out.Data...)
		if out.NextCursor == nil {
			return all
		}
		if *out.NextCursor == cursor {
			t.Fatalf("GET %s: next_cursor %q repeats", p, cursor)
		}
		cursor = *out.NextCursor
	}
}

// IDs answers the "id" of each item.
func IDs(t testing.TB, items []json.RawMessage) []string {
	t.Helper()
	ids := make([]string, 0, len(items))
	for _, it := range items {
		var v struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(it, &v); err != nil {
			t.Fatalf("decode %s: %v", it, err)
		}
		ids = append(ids, v.ID)
	}
	return ids
}

// RandomSuffix answers 8 random hex digits, for names that must not collide between tests.
func RandomSuffix() string { return randomHex(4) }
