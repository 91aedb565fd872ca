package tenant_test

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// inputServer is a service whose per-IP auth budget cannot get in the way of many signups.
func inputServer(t *testing.T) *servertest.Server {
	return servertest.New(t, func(c *config.Config) { c.AuthRatePerMinute = 1_000_000 })
}

// inputProblem checks that res is a problem with the status and code, naming every field in
// fields among its errors, and carrying the request's id.
func inputProblem(t *testing.T, what string, res *servertest.Response, status int, code string, fields ...string) {
	t.Helper()
	if res.Status != status {
		t.Errorf("%s: %d %s, want %d %s", what, res.Status, res.Body, status, code)
		return
	}
	p := res.Problem(t)
	if p.Status != status || p.Code != code {
		t.Errorf("%s: problem status %d code %q, want %d %q: %s", what, p.Status, p.Code, status, code, res.Body)
	}
	for _, f := range fields {
		if !p.Field(f) {
			t.Errorf("%s: errors do not name %q: %s", what, f, res.Body)
		}
	}
	if p.RequestID == "" || p.RequestID != res.Header.Get("X-Request-Id") {
		t.Errorf("%s: request_id %q, X-Request-Id %q", what, p.RequestID, res.Header.Get("X-Request-Id"))
	}
}

// inputState is what a tenant can see of the stores a bad request might have written to.
type inputState struct{ projects, users, apiKeys, events []string }

func inputStateOf(t *testing.T, s *servertest.Server, token string) inputState {
	t.Helper()
	return inputState{
		projects: servertest.IDs(t, s.ListAll(t, token, "/v1/projects")),
		users:    servertest.IDs(t, s.ListAll(t, token, "/v1/users")),
		apiKeys:  servertest.IDs(t, s.ListAll(t, token, "/v1/api-keys")),
		events:   servertest.IDs(t, s.ListAll(t, token, "/v1/events")),
	}
}

func inputSameState(t *testing.T, before, after inputState) {
	t.Helper()
	for _, c := range []struct {
		what          string
		before, after []string
	}{
		{"projects", before.projects, after.projects},
		{"users", before.users, after.users},
		{"API keys", before.apiKeys, after.apiKeys},
		{"events", before.events, after.events},
	} {
		if !slices.Equal(c.before, c.after) {
			t.Errorf("bad requests changed the tenant's %s: before %v, after %v", c.what, c.before, c.after)
		}
	}
}

// TestInputSignup: a bad signup is a 400 naming the field, and leaves no tenant behind: the
// slug cannot be logged in to, and a correct signup may take it afterwards.
func TestInputSignup(t *testing.T) {
	s := inputServer(t)
	freshSlug := func() string { return "input-" + servertest.RandomSuffix() }
	valid := func(slug string) map[string]any {
		return map[string]any{"tenant_name": "Input Co", "tenant_slug": slug, "email": "owner@" + slug + ".example.com", "password": servertest.Password}
	}
	with := func(slug, key string, v any) map[string]any {
		b := valid(slug)
		b[key] = v
		return b
	}
	cases := []struct {
		name      string
		body      func(slug string) any
		field     string
		slugValid bool // the slug itself is acceptable, so it must be free afterwards
		sent      func(slug string) string
	}{
		{"bad email", func(s string) any { return with(s, "email", "not-an-email") }, "email", true, nil},
		{"email with display name", func(s string) any { return with(s, "email", "Ada <ada@example.com>") }, "email", true, nil},
		{"email without domain dot", func(s string) any { return with(s, "email", "ada@localhost") }, "email", true, nil},
		{"password of 9 characters", func(s string) any { return with(s, "password", "123456789") }, "password", true, nil},
		{"password of 9 characters in 18 bytes", func(s string) any { return with(s, "password", strings.Repeat("é", 9)) }, "password", true, nil},
		{"empty password", func(s string) any { return with(s, "password", "") }, "password", true, nil},
		{"slug with capitals and underscore", func(s string) any { return with(s, "tenant_slug", "Bad_"+s) }, "tenant_slug", false, func(s string) string { return "Bad_" + s }},
		{"slug ending in a hyphen", func(s string) any { return with(s, "tenant_slug", s+"-") }, "tenant_slug", false, func(s string) string { return s + "-" }},
		{"slug of one character", func(s string) any { return with(s, "tenant_slug", "a") }, "tenant_slug", false, func(string) string { return "a" }},
		{"empty tenant name", func(s string) any { return with(s, "tenant_name", "") }, "tenant_name", true, nil},
		{"unknown field", func(s string) any { return with(s, "plan", "enterprise") }, "plan", true, nil},
		{"wrong type", func(s string) any { return with(s, "tenant_name", 5) }, "tenant_name", true, nil},
		{"malformed JSON", func(s string) any {
			return `{"tenant_name": "Input Co", "tenant_slug": "` + s + `", "email": "owner@` + s + `.example.com", "password": "` + servertest.Password + `"`
		}, "body", true, nil},
		{"trailing garbage", func(s string) any {
			return `{"tenant_name": "Input Co", "tenant_slug": "` + s + `", "email": "owner@` + s + `.example.com", "password": "` + servertest.Password + `"} {}`
		}, "body", true, nil},
		{"not an object", func(s string) any { return `["` + s + `"]` }, "body", true, nil},
		{"empty body", func(s string) any { return "" }, "body", true, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			slug := freshSlug()
			res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/signup", Body: c.body(slug)})
			inputProblem(t, "POST /v1/signup", res, http.StatusBadRequest, "validation_failed", c.field)

			// Nothing stored: the owner cannot log in to the slug sent...
			sent := slug
			if c.sent != nil {
				sent = c.sent(slug)
			}
			login := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/auth/token", Body: map[string]string{
				"grant_type": "password", "tenant": sent, "email": "owner@" + slug + ".example.com", "password": servertest.Password,
			}})
			inputProblem(t, "password login to the slug of a refused signup", login, http.StatusUnauthorized, "invalid_credentials")
			if !c.slugValid {
				return
			}
			// ...and the slug is still free. The password is exactly 10 characters: the least allowed.
			ok := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/signup", Body: with(slug, "password", "0123456789")})
			if ok.Status != http.StatusCreated {
				t.Fatalf("signup with the slug of a refused signup: %d %s", ok.Status, ok.Body)
			}
		})
	}

	// The slug rule says "2 to 63": the shortest allowed slug is accepted.
	t.Run("slug of two characters", func(t *testing.T) {
		slug := servertest.RandomSuffix()[:2]
		res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/signup", Body: valid(slug)})
		if res.Status != http.StatusCreated {
			t.Errorf("signup with the two-character slug %q: %d %s", slug, res.Status, res.Body)
		}
	})
}

// TestInputProjects: bad project bodies are 400 naming the field (413 when over 1 MiB) and
// store neither a project nor an event.
func TestInputProjects(t *testing.T) {
	s := inputServer(t)
	a := s.Signup(t, "input-p")
	s.Create(t, a.Token, "/v1/projects", map[string]string{"name": "existing"})
	before := inputStateOf(t, s, a.Token)

	// A valid object padded with spaces to exactly n bytes.
	padded := func(n int) []byte {
		b := []byte(`{"name": "big"}`)
		return append(b, bytes.Repeat([]byte(" "), n-len(b))...)
	}
	cases := []struct {
		name   string
		body   any
		status int
		code   string
		field  string
	}{
		{"unknown field", map[string]any{"name": "x", "tenant_id": a.ID}, 400, "validation_failed", "tenant_id"},
		{"wrong type of name", map[string]any{"name": 5}, 400, "validation_failed", "name"},
		{"wrong type of description", map[string]any{"name": "x", "description": []string{"a"}}, 400, "validation_failed", "description"},
		{"empty name", map[string]any{"name": ""}, 400, "validation_failed", "name"},
		{"null name", map[string]any{"name": nil}, 400, "validation_failed", "name"},
		{"no name", map[string]any{"description": "nameless"}, 400, "validation_failed", "name"},
		{"name of 201 characters", map[string]any{"name": strings.Repeat("n", 201)}, 400, "validation_failed", "name"},
		{"description of 2001 characters", map[string]any{"name": "x", "description": strings.Repeat("d", 2001)}, 400, "validation_failed", "description"},
		{"malformed JSON", `{"name": "x"`, 400, "validation_failed", "body"},
		{"trailing garbage", `{"name": "x"} garbage`, 400, "validation_failed", "body"},
		{"a second object", `{"name": "x"} {"name": "y"}`, 400, "validation_failed", "body"},
		{"not an object", `["x"]`, 400, "validation_failed", "body"},
		{"empty body", "", 400, "validation_failed", "body"},
		{"1 MiB + 1 byte", padded(httpx.MaxBody + 1), 413, "payload_too_large", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/projects", Token: a.Token, Body: c.body})
			var fields []string
			if c.field != "" {
				fields = append(fields, c.field)
			}
			inputProblem(t, "POST /v1/projects", res, c.status, c.code, fields...)
		})
	}
	inputSameState(t, before, inputStateOf(t, s, a.Token))

	// The limits are limits, not less: exactly 1 MiB is read, and lengths count characters.
	t.Run("exactly 1 MiB", func(t *testing.T) {
		res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/projects", Token: a.Token, Body: padded(httpx.MaxBody)})
		if res.Status != http.StatusCreated {
			t.Errorf("POST /v1/projects with a body of exactly 1 MiB: %d %s", res.Status, res.Body)
		}
	})
	t.Run("200-character name and 2000-character description", func(t *testing.T) {
		for _, ch := range []string{"n", "é", "😀"} {
			res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/projects", Token: a.Token, Body: map[string]string{
				"name": strings.Repeat(ch, 200), "description": strings.Repeat(ch, 2000),
			}})
			if res.Status != http.StatusCreated {
				t.Errorf("POST /v1/projects with name and description of %q at their maximum length in characters: %d %s", ch, res.Status, res.Body)
			}
		}
	})
}

// TestInputPathIDs: an id that is not a UUID is a 400 naming id, on every id route.
func TestInputPathIDs(t *testing.T) {
	s := inputServer(t)
	a := s.Signup(t, "input-id")
	s.Create(t, a.Token, "/v1/projects", map[string]string{"name": "kept"})
	before := inputStateOf(t, s, a.Token)
	for _, rt := range servertest.IDRoutes {
		for _, bad := range []string{"not-a-uuid", "0123456789abcdef0123456789abcdef", "{01234567-89ab-cdef-0123-456789abcdef}", "12345"} {
			path := rt.Path(bad)
			res := s.Do(t, servertest.Request{Method: rt.Method, Path: path, Token: a.Token, Body: rt.Body, Header: rt.Header()})
			inputProblem(t, rt.Method+" "+path, res, http.StatusBadRequest, "validation_failed", "id")
		}
	}
	inputSameState(t, before, inputStateOf(t, s, a.Token))
}

// TestInputUsersAndAPIKeys: bad users and keys are 400s naming every bad field, storing nothing.
func TestInputUsersAndAPIKeys(t *testing.T) {
	s := inputServer(t)
	a := s.Signup(t, "input-u")
	before := inputStateOf(t, s, a.Token)

	for _, c := range []struct {
		name   string
		path   string
		body   any
		fields []string
	}{
		{"user with bad email and short password", "/v1/users", map[string]string{"email": "nobody-at-example.com", "password": "short", "role": "member"}, []string{"email", "password"}},
		{"user with bad role", "/v1/users", map[string]string{"email": "ada@example.com", "password": servertest.Password, "role": "superuser"}, []string{"role"}},
		{"user as platform admin", "/v1/users", map[string]string{"email": "ada@example.com", "password": servertest.Password, "role": "platform_admin"}, []string{"role"}},
		{"user with unknown field", "/v1/users", map[string]any{"email": "ada@example.com", "password": servertest.Password, "role": "member", "tenant_id": a.ID}, []string{"tenant_id"}},
		{"API key with bad role", "/v1/api-keys", map[string]string{"name": "ci", "role": "root"}, []string{"role"}},
		{"API key as platform admin", "/v1/api-keys", map[string]string{"name": "ci", "role": "platform_admin"}, []string{"role"}},
		{"API key without name", "/v1/api-keys", map[string]string{"role": "member"}, []string{"name"}},
		{"API key with bad rate limit", "/v1/api-keys", map[string]any{"name": "ci", "role": "member", "rate_limit": map[string]any{"requests_per_second": 0, "burst": 0}}, []string{"rate_limit.requests_per_second", "rate_limit.burst"}},
		{"API key with wrong type", "/v1/api-keys", map[string]any{"name": "ci", "role": "member", "rate_limit": "fast"}, []string{"rate_limit"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := s.Do(t, servertest.Request{Method: "POST", Path: c.path, Token: a.Token, Body: c.body})
			inputProblem(t, "POST "+c.path, res, http.StatusBadRequest, "validation_failed", c.fields...)
		})
	}
	inputSameState(t, before, inputStateOf(t, s, a.Token))
}

// TestInputListParams: limit must be 1..200 and cursor one the API made, on every list.
func TestInputListParams(t *testing.T) {
	s := inputServer(t)
	a := s.Signup(t, "input-l")
	for _, list := range servertest.ListPaths {
		for _, c := range []struct{ query, field string }{
			{"limit=0", "limit"},
			{"limit=-1", "limit"},
			{"limit=201", "limit"},
			{"limit=ten", "limit"},
			{"cursor=garbage", "cursor"},
			{"cursor=%21%21%21", "cursor"},
			{"cursor=AAAAAAAAAAAAAAAAAAAAAA%3D%3D", "cursor"}, // padded base64 of 16 bytes
		} {
			path := list + "?" + c.query
			res := s.Do(t, servertest.Request{Method: "GET", Path: path, Token: a.Token})
			inputProblem(t, "GET "+path, res, http.StatusBadRequest, "validation_failed", c.field)
		}
		for _, ok := range []string{"limit=1", "limit=200"} {
			if res := s.Do(t, servertest.Request{Method: "GET", Path: list + "?" + ok, Token: a.Token}); res.Status != http.StatusOK {
				t.Errorf("GET %s?%s: %d %s", list, ok, res.Status, res.Body)
			}
		}
	}
}
