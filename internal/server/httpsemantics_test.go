package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/saasbase/saasbase/internal/server/servertest"
)

// TestWrongMethodIs405 sends methods a known path does not serve: the router answers 405
// with the methods it does serve, before authentication, so a caller without a credential
// learns the same as one with.
func TestWrongMethodIs405(t *testing.T) {
	s := servertest.New(t)
	ten := s.Signup(t, "allow")
	for _, c := range []struct {
		method, path, token, allow string
	}{
		{"DELETE", "/v1/projects", "", "GET, HEAD, POST"},
		{"DELETE", "/v1/projects", ten.Token, "GET, HEAD, POST"},
		{"PUT", "/v1/projects/0b7a4b2e-5b0c-4a43-8d0c-2d4f1c3e9a10", "", "GET, HEAD, PATCH, DELETE"},
		{"GET", "/v1/signup", "", "POST"},
		{"POST", "/v1/admin/tenants", "", "GET, HEAD"},
		{"DELETE", "/livez", "", "GET, HEAD"},
		{"GET", "/ofrep/v1/evaluate/flags", "", "POST"},
	} {
		res := s.Do(t, servertest.Request{Method: c.method, Path: c.path, Token: c.token})
		if res.Status != http.StatusMethodNotAllowed || res.Problem(t).Code != "method_not_allowed" {
			t.Errorf("%s %s: %d %s, want 405 method_not_allowed", c.method, c.path, res.Status, res.Body)
			continue
		}
		if got := strings.Join(res.Header.Values("Allow"), ", "); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
	// A path no method serves stays a 404, whatever the method: /v1 and /v1/admin too, which
	// are prefixes of paths, not routes.
	for _, path := range []string{"/v1/nowhere", "/v1", "/v1/", "/v1/admin", "/v1/admin/"} {
		for _, method := range []string{"GET", "DELETE", "FOO"} {
			res, err := s.TryDo(servertest.Request{Method: method, Path: path})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != http.StatusNotFound || res.Header.Get("Allow") != "" {
				t.Errorf("%s %s: %d Allow %q, want 404 without Allow", method, path, res.Status, res.Header.Get("Allow"))
			}
		}
	}
}

// TestHeadAnswersLikeGet sends HEAD to GET routes, public and authenticated: the status and
// headers of the GET, without its body.
func TestHeadAnswersLikeGet(t *testing.T) {
	s := servertest.New(t)
	ten := s.Signup(t, "head")
	for _, c := range []struct{ path, token string }{
		{"/livez", ""},
		{"/v1/projects", ten.Token},
		{"/v1/me", ten.Token},
		{"/v1/me", ""}, // a 401, as the GET
	} {
		get := s.Do(t, servertest.Request{Method: "GET", Path: c.path, Token: c.token})
		head := s.Do(t, servertest.Request{Method: "HEAD", Path: c.path, Token: c.token})
		if head.Status != get.Status || len(head.Body) != 0 {
			t.Errorf("HEAD %s: %d with %d bytes, want %d without a body", c.path, head.Status, len(head.Body), get.Status)
		}
		for _, h := range []string{"Content-Type", "Content-Length", "WWW-Authenticate"} {
			if head.Header.Get(h) != get.Header.Get(h) {
				t.Errorf("HEAD %s: %s %q, GET's %q", c.path, h, head.Header.Get(h), get.Header.Get(h))
			}
		}
	}
}

// TestBodyMediaType sends JSON operations bodies of other media types: 415 naming the
// accepted ones, after authentication. JSON under any parameters or +json suffix is taken, and
// a request without a body needs no Content-Type.
func TestBodyMediaType(t *testing.T) {
	s := servertest.New(t)
	ten := s.Signup(t, "media")
	post := func(token, contentType, body string) *servertest.Response {
		t.Helper()
		return s.Do(t, servertest.Request{Method: "POST", Path: "/v1/projects", Token: token, Body: body,
			Header: map[string]string{"Content-Type": contentType, "Idempotency-Key": "media-" + servertest.RandomSuffix()}})
	}
	for _, ct := range []string{"text/plain", "application/xml", "application/x-www-form-urlencoded"} {
		res := post(ten.Token, ct, `{"name":"x"}`)
		p := res.Problem(t)
		if res.Status != http.StatusUnsupportedMediaType || p.Code != "unsupported_media_type" || !strings.Contains(p.Detail, "application/json") {
			t.Errorf("%s: %d %s, want 415 unsupported_media_type naming application/json", ct, res.Status, res.Body)
		}
		if got := res.Header.Get("Accept-Post"); !strings.Contains(got, "application/json") {
			t.Errorf("%s: Accept-Post %q", ct, got)
		}
	}
	if res := post("", "text/plain", `{"name":"x"}`); res.Status != http.StatusUnauthorized {
		t.Errorf("text/plain without a credential: %d, want 401 (authentication first)", res.Status)
	}
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON", "application/merge-patch+json"} {
		if res := post(ten.Token, ct, `{"name":"p-`+servertest.RandomSuffix()+`"}`); res.Status != http.StatusCreated {
			t.Errorf("%s: %d %s, want 201", ct, res.Status, res.Body)
		}
	}

	// A retried key whose first try had the wrong media type runs anew: 415 is not stored.
	key := "media-retry-" + servertest.RandomSuffix()
	for i, ct := range []string{"text/plain", "application/json"} {
		res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/projects", Token: ten.Token, Body: `{"name":"retried"}`,
			Header: map[string]string{"Content-Type": ct, "Idempotency-Key": key}})
		if want := []int{415, 201}[i]; res.Status != want {
			t.Errorf("try %d (%s): %d %s, want %d", i+1, ct, res.Status, res.Body, want)
		}
	}

	endpoint := s.Create(t, ten.Token, "/v1/webhook-endpoints", map[string]any{"url": "https://hooks.example.com/media", "event_types": []string{"*"}})
	if res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/webhook-endpoints/" + endpoint + "/enable", Token: ten.Token}); res.Status != http.StatusOK {
		t.Errorf("enable without a body or Content-Type: %d %s", res.Status, res.Body)
	}
}

// TestContentTooLargeTitle: 413 is "Content Too Large" (RFC 9110), not Go's older name.
func TestContentTooLargeTitle(t *testing.T) {
	s := servertest.New(t)
	ten := s.Signup(t, "large")
	res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/projects", Token: ten.Token,
		Body: `{"name":"` + strings.Repeat("a", 1<<20) + `"}`})
	if p := res.Problem(t); res.Status != http.StatusRequestEntityTooLarge || p.Title != "Content Too Large" {
		t.Errorf("%d %q, want 413 Content Too Large", res.Status, p.Title)
	}
}

// TestOpenAPIDocuments415: every POST, PUT and PATCH behind httpx.RequireJSON documents its
// 415. Usage ingestion checks its own media types, and OFREP answers in its own shapes.
func TestOpenAPIDocuments415(t *testing.T) {
	spec, _ := servertest.Spec(t)
	for _, path := range spec.Paths.InMatchingOrder() {
		if path == "/v1/usage/events" || strings.HasPrefix(path, "/ofrep/") {
			continue
		}
		for method, op := range spec.Paths.Value(path).Operations() {
			switch method {
			case http.MethodPost, http.MethodPut, http.MethodPatch:
				if op.Responses.Status(http.StatusUnsupportedMediaType) == nil {
					t.Errorf("%s %s documents no 415", method, path)
				}
			}
		}
	}
}
