// Package servertest runs the whole service over HTTP against the test package's own
// database and a private Redis key prefix, and checks every answer against openapi.yaml.
package servertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/platform/tracing"
	"github.com/saasbase/saasbase/internal/server"
	"github.com/saasbase/saasbase/openapi/openapitest"
)

// Server is a running service.
type Server struct {
	URL    string
	App    *server.App
	Config config.Config
	spec   *openapi3.T
	router routers.Router
}

// fastPasswords keeps argon2id's shape at a cost tests can afford thousands of times.
var fastPasswords = auth.PasswordParams{Memory: 64, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// New starts the service on a loopback port; configure may change the configuration.
// The package must call pgtest.Main from TestMain.
func New(t testing.TB, configure ...func(*config.Config)) *Server {
	t.Helper()
	return NewAt(t, nil, configure...)
}

// NewAt is New with the service's clock set to clk (nil: the system clock).
func NewAt(t testing.TB, clk clock.Clock, configure ...func(*config.Config)) *Server {
	t.Helper()
	return NewWith(t, Options{Clock: clk}, configure...)
}

// Options are what a test may give the service beyond its configuration.
type Options struct {
	Clock   clock.Clock      // nil: the system clock
	Logger  *slog.Logger     // nil: errors only, to stderr
	Tracing *tracing.Tracing // nil: off
}

// NewWith is New with opt.
func NewWith(t testing.TB, opt Options, configure ...func(*config.Config)) *Server {
	t.Helper()
	env := map[string]string{
		"DATABASE_URL":       pgtest.OwnerURL(t),
		"REDIS_KEY_PREFIX":   "test:" + randomHex(6) + ":",
		"LOG_LEVEL":          "error",
		"DATABASE_MAX_CONNS": "16",
		// Tests send bursts that no plan would allow; the rate-limit tests turn it on.
		"RATE_LIMIT_ENABLED": "false",
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range configure {
		f(&cfg)
	}
	logger := opt.Logger
	if logger == nil {
		logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	app, err := server.New(context.Background(), cfg, server.Options{Logger: logger, Clock: opt.Clock, Passwords: &fastPasswords, Tracing: opt.Tracing})
	if err != nil {
		t.Fatal(err)
	}
	if err := app.FlagRefresher.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(app.Handler())
	t.Cleanup(func() {
		ts.Close()
		app.Close()
	})
	spec, router := Spec(t)
	return &Server{URL: ts.URL, App: app, Config: cfg, spec: spec, router: router}
}

// At answers a view of s that sends its requests to url: another instance of the same
// service (same database, Redis prefix and signing key), such as a process of its own. The
// view mints tokens and checks answers as s does.
func (s *Server) At(url string) *Server {
	view := *s
	view.URL = url
	return &view
}

// Spec loads and validates openapi.yaml.
func Spec(t testing.TB) (*openapi3.T, routers.Router) { return openapitest.Load(t) }

// Response is a finished exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Decode unmarshals the body into v.
func (r *Response) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Problem decodes a problem+json body.
func (r *Response) Problem(t testing.TB) Problem {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("status %d with Content-Type %q, want a problem: %s", r.Status, ct, r.Body)
	}
	var p Problem
	r.Decode(t, &p)
	return p
}

// Want stops the test unless the answer has status and, when code is not "", is a problem
// with that code.
func (r *Response) Want(t testing.TB, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if code != "" {
		if p := r.Problem(t); p.Code != code {
			t.Fatalf("code %q, want %q: %s", p.Code, code, r.Body)
		}
	}
}

// WantUnauthorized stops the test unless the answer is the 401 that every bad credential
// gets: code unauthorized, with a Bearer challenge.
func (r *Response) WantUnauthorized(t testing.TB) {
	t.Helper()
	r.Want(t, http.StatusUnauthorized, "unauthorized")
	if h := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
		t.Fatalf("WWW-Authenticate %q, want Bearer...", h)
	}
}

// Problem is the client's view of an error answer.
type Problem struct {
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Code      string `json:"code"`
	Detail    string `json:"detail"`
	RequestID string `json:"request_id"`
	Errors    []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
		Index   *int   `json:"index"`
	} `json:"errors"`
}

// FieldAt reports whether the problem names path, written "[i].field", as the field of an
// error with index i: how a batch's problems name the item at fault (usage events).
func (p Problem) FieldAt(path string) bool {
	for _, e := range p.Errors {
		if e.Index != nil && path == fmt.Sprintf("[%d].%s", *e.Index, e.Field) {
			return true
		}
	}
	return false
}

// Field reports whether the problem names field among its errors.
func (p Problem) Field(name string) bool {
	for _, e := range p.Errors {
		if e.Field == name {
			return true
		}
	}
	return false
}

// Request describes one call. Body is marshalled to JSON unless it is a string or []byte,
// which are sent as they are.
type Request struct {
	Method string
	Path   string
	Token  string
	Body   any
	Header map[string]string
}

// Do sends a request and checks the answer against openapi.yaml: its status must be
// documented for the operation and its headers and body must match the schema.
func (s *Server) Do(t testing.TB, req Request) *Response {
	t.Helper()
	hr, raw, err := s.newRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	out := &Response{Status: res.StatusCode, Header: res.Header, Body: body}
	if res.Header.Get("X-Request-Id") == "" {
		t.Errorf("%s %s: no X-Request-Id", req.Method, req.Path)
	}
	s.validate(t, hr, raw, out)
	return out
}

// Get GETs path as token ("" sends no credential).
func (s *Server) Get(t testing.TB, token, path string) *Response {
	t.Helper()
	return s.Do(t, Request{Method: "GET", Path: path, Token: token})
}

// newRequest builds the HTTP request that req describes, and answers the body it carries too,
// since Do checks the answer against it. A nil Body sends none; a string or a []byte is sent
// as it is, so that tests can send what no JSON encoder would write; anything else goes as
// JSON. Do and TryDo both build through here so that the two cannot disagree on a body.
func (s *Server) newRequest(req Request) (*http.Request, []byte, error) {
	var raw []byte
	switch b := req.Body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			return nil, nil, err
		}
	}
	hr, err := http.NewRequest(req.Method, s.URL+req.Path, bytes.NewReader(raw))
	if err != nil {
		return nil, nil, err
	}
	if raw != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if req.Token != "" {
		hr.Header.Set("Authorization", "Bearer "+req.Token)
	}
	for k, v := range req.Header {
		hr.Header.Set(k, v)
	}
	return hr, raw, nil
}

// validate checks an answer against the operation openapi.yaml describes.
func (s *Server) validate(t testing.TB, hr *http.Request, body []byte, res *Response) {
	t.Helper()
	if res.Status == http.StatusNotFound && res.Header.Get("Content-Type") == "application/problem+json" {
		if _, _, err := s.router.FindRoute(hr); err != nil {
			return // an unknown path: nothing to check against
		}
	}
	switch {
	case res.Status == http.StatusMethodNotAllowed:
		s.validate405(t, hr, res)
		return
	case hr.Method == http.MethodHead:
		s.validateHead(t, hr, res)
		return
	}
	openapitest.Check(t, s.router, hr, body, res.Status, res.Header, res.Body)
}

// validate405 checks a 405, which has no operation to be checked against: the path must be
// described under each method that Allow names, and the answer must be the
// MethodNotAllowed problem.
func (s *Server) validate405(t testing.TB, hr *http.Request, res *Response) {
	t.Helper()
	allow := strings.Split(res.Header.Get("Allow"), ", ")
	for _, m := range allow {
		if m == http.MethodHead {
			continue // served as GET
		}
		other := hr.Clone(hr.Context())
		other.Method = m
		if _, _, err := s.router.FindRoute(other); err != nil {
			t.Errorf("%s %s → 405: Allow names %s, which openapi.yaml does not describe: %v", hr.Method, hr.URL.Path, m, err)
		}
	}
	var p Problem
	if res.Header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(res.Body, &p) != nil || p.Code != "method_not_allowed" || p.Status != 405 {
		t.Errorf("%s %s → 405: not a method_not_allowed problem: %s", hr.Method, hr.URL.Path, res.Body)
	}
}

// validateHead checks a HEAD, which is described as the GET it is served as: the GET
// operation must document the status, and there is no body.
func (s *Server) validateHead(t testing.TB, hr *http.Request, res *Response) {
	t.Helper()
	get := hr.Clone(hr.Context())
	get.Method = http.MethodGet
	route, _, err := s.router.FindRoute(get)
	if err != nil {
		if res.Status != http.StatusNotFound {
			t.Errorf("HEAD %s → %d: no GET described in openapi.yaml: %v", hr.URL.Path, res.Status, err)
		}
		return
	}
	if route.Operation.Responses.Status(res.Status) == nil && route.Operation.Responses.Default() == nil {
		t.Errorf("HEAD %s → %d: not documented for GET %s", hr.URL.Path, res.Status, route.Path)
	}
	if len(res.Body) != 0 {
		t.Errorf("HEAD %s → %d: a body of %d bytes", hr.URL.Path, res.Status, len(res.Body))
	}
}

// Tenant is a signed-up tenant and its owner.
type Tenant struct {
	ID           string
	Slug         string
	OwnerID      string
	OwnerEmail   string
	Token        string
	RefreshToken string
}

// Password is the password Signup gives every owner.
const Password = "correct horse battery staple"

// Signup creates a tenant with a unique slug starting with prefix.
func (s *Server) Signup(t testing.TB, prefix string) Tenant {
	t.Helper()
	slug := prefix + "-" + randomHex(4)
	email := "owner@" + slug + ".example.com"
	res := s.Do(t, Request{Method: "POST", Path: "/v1/signup", Body: map[string]string{
		"tenant_name": prefix, "tenant_slug": slug, "email": email, "password": Password,
	}})
	if res.Status != http.StatusCreated {
		t.Fatalf("signup: %d %s", res.Status, res.Body)
	}
	var out struct {
		Tenant       struct{ ID string }
		User         struct{ ID string }
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	res.Decode(t, &out)
	return Tenant{ID: out.Tenant.ID, Slug: slug, OwnerID: out.User.ID, OwnerEmail: email, Token: out.AccessToken, RefreshToken: out.RefreshToken}
}

// PlatformToken mints an operator token.
func (s *Server) PlatformToken(t testing.TB) string {
	t.Helper()
	tok, err := s.App.Sessions.AccessToken([16]byte{}, "platform-admin", auth.RolePlatformAdmin, s.Config.AccessTokenTTL)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Create POSTs body to path as token and answers the new resource's id.
func (s *Server) Create(t testing.TB, token, path string, body any) string {
	t.Helper()
	res := s.Do(t, Request{Method: "POST", Path: path, Token: token, Body: body})
	if res.Status != http.StatusCreated {
		t.Fatalf("POST %s: %d %s", path, res.Status, res.Body)
	}
	var out struct{ ID string }
	res.Decode(t, &out)
	return out.ID
}

// RandomSuffix answers 8 random hex digits, for names that must not collide between tests.
func RandomSuffix() string { return randomHex(4) }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TokenFor mints a fresh owner token for a tenant at the service's current time (tokens from
// Signup expire when a test moves the clock on).
func (s *Server) TokenFor(t testing.TB, ten Tenant) string {
	t.Helper()
	tok, err := s.App.Sessions.AccessToken(uuid.MustParse(ten.ID), ten.OwnerID, auth.RoleOwner, s.Config.AccessTokenTTL)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TryDo sends a request and answers transport errors instead of failing the test, and checks
// nothing against openapi.yaml: for fault tests, where no answer is also an answer.
func (s *Server) TryDo(req Request) (*Response, error) {
	hr, _, err := s.newRequest(req)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return &Response{Status: res.StatusCode, Header: res.Header, Body: body}, err
}

// Poll calls check until it reports done, and fails the test with what and check's last
// answer once deadline has passed: for what happens in its own time (a change reaching
// another replica). Tests wait this way rather than sleep and assert.
func Poll(t testing.TB, deadline time.Duration, what string, check func() (done bool, last string)) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		done, last := check()
		if done {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s; last answer: %s", what, deadline, last)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
