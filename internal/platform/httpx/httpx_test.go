package httpx_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

func TestClientIP(t *testing.T) {
	trusted, err := httpx.ParseCIDRs("10.0.0.0/8, 192.168.1.1 ,fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		xff     []string
		want    string
	}{
		{"no proxies configured: X-Forwarded-For ignored", nil, "203.0.113.7:4000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"untrusted peer: X-Forwarded-For ignored", trusted, "203.0.113.7:4000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"untrusted peer claiming a trusted address", trusted, "203.0.113.7:4000", []string{"10.0.0.5"}, "203.0.113.7"},
		{"trusted proxy: its client", trusted, "10.0.0.1:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"trusted proxy without X-Forwarded-For: the proxy", trusted, "10.0.0.1:4000", nil, "10.0.0.1"},
		{"spoofed leftmost entries ignored", trusted, "10.0.0.1:4000", []string{"1.1.1.1, 2.2.2.2, 198.51.100.1"}, "198.51.100.1"},
		{"trusted hops skipped: right-most untrusted", trusted, "10.0.0.1:4000", []string{"1.1.1.1, 198.51.100.1, 192.168.1.1, 10.9.9.9"}, "198.51.100.1"},
		{"several header lines read as one list", trusted, "10.0.0.1:4000", []string{"1.1.1.1", "198.51.100.1, 10.0.0.2"}, "198.51.100.1"},
		{"unparsable hop: stop at the last trusted one", trusted, "10.0.0.1:4000", []string{"198.51.100.1, garbage, 10.0.0.2"}, "10.0.0.2"},
		{"all hops trusted: the farthest", trusted, "10.0.0.1:4000", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"IPv4-mapped peer is trusted as IPv4", trusted, "[::ffff:10.0.0.1]:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"IPv4-mapped client is answered as IPv4", trusted, "10.0.0.1:4000", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"IPv6 trusted proxy", trusted, "[fd00::1]:4000", []string{"2001:db8::1"}, "2001:db8::1"},
		{"IPv6 untrusted peer", trusted, "[2001:db8::2]:4000", []string{"198.51.100.1"}, "2001:db8::2"},
		{"peer without port", trusted, "203.0.113.7", []string{"198.51.100.1"}, "203.0.113.7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = c.peer
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got := httpx.ClientIP{Trusted: c.trusted}.Of(r)
			if got.String() != c.want {
				t.Errorf("peer %s, X-Forwarded-For %q: %s, want %s", c.peer, c.xff, got, c.want)
			}
		})
	}

	t.Run("unparsable peer", func(t *testing.T) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "not an address"
		r.Header.Set("X-Forwarded-For", "198.51.100.1")
		if got := (httpx.ClientIP{Trusted: trusted}).Of(r); got.IsValid() {
			t.Errorf("peer %q: %s, want no address", r.RemoteAddr, got)
		}
	})
}

func TestParseCIDRs(t *testing.T) {
	got, err := httpx.ParseCIDRs(" 10.1.2.3/8,, 192.168.1.1, 2001:db8::/32 ")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.168.1.1/32", "2001:db8::/32"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ParseCIDRs: %v, want %v", got, want)
	}
	if empty, err := httpx.ParseCIDRs(""); err != nil || len(empty) != 0 {
		t.Errorf(`ParseCIDRs(""): %v, %v`, empty, err)
	}
	for _, bad := range []string{"nope", "10.0.0.0/33", "10.0.0.0/8, 300.1.1.1"} {
		if _, err := httpx.ParseCIDRs(bad); err == nil {
			t.Errorf("ParseCIDRs(%q): no error", bad)
		}
	}
}

// fieldErr checks that err is a validation error naming field.
func fieldErr(t *testing.T, what string, err error, field string) {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) {
		t.Errorf("%s: error %v, want an *errs.Error", what, err)
		return
	}
	if e.Kind != errs.Invalid || e.Code != "validation_failed" {
		t.Errorf("%s: kind %v code %q, want invalid validation_failed", what, e.Kind, e.Code)
	}
	for _, f := range e.Fields {
		if f.Field == field {
			return
		}
	}
	t.Errorf("%s: fields %+v do not name %q", what, e.Fields, field)
}

func cursorOf(id uuid.UUID) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

func TestParsePage(t *testing.T) {
	page := func(query string) (httpx.Page, error) {
		return httpx.ParsePage(httptest.NewRequest("GET", "/v1/things?"+query, nil))
	}
	p, err := page("")
	if err != nil || p.Limit != 50 || p.Cursor != uuid.Nil {
		t.Errorf("no query: %+v, %v; want limit 50 from the start", p, err)
	}
	for _, c := range []struct {
		query string
		limit int
	}{{"limit=1", 1}, {"limit=200", 200}, {"limit=73", 73}} {
		if p, err := page(c.query); err != nil || p.Limit != c.limit {
			t.Errorf("%s: %+v, %v; want limit %d", c.query, p, err, c.limit)
		}
	}
	for _, q := range []string{"limit=0", "limit=-1", "limit=201", "limit=1e2", "limit=ten", "limit=%20"} {
		_, err := page(q)
		fieldErr(t, q, err, "limit")
	}

	id := uuid.Must(uuid.NewV7())
	if p, err := page("cursor=" + cursorOf(id)); err != nil || p.Cursor != id || p.Limit != 50 {
		t.Errorf("a cursor of %s: %+v, %v", id, p, err)
	}
	for _, q := range []string{
		"cursor=garbage",
		"cursor=%21%21%21",
		"cursor=" + base64.RawURLEncoding.EncodeToString(make([]byte, 15)),
		"cursor=" + base64.RawURLEncoding.EncodeToString(make([]byte, 17)),
		"cursor=" + base64.URLEncoding.EncodeToString(id[:]), // padded
		"cursor=" + id.String(),
	} {
		_, err := page(q)
		fieldErr(t, q, err, "cursor")
	}

	_, err = page("limit=0&cursor=garbage")
	fieldErr(t, "bad limit and cursor", err, "limit")
	fieldErr(t, "bad limit and cursor", err, "cursor")
}

func TestNewList(t *testing.T) {
	ids := make([]uuid.UUID, 5)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
	}
	self := func(id uuid.UUID) uuid.UUID { return id }

	// Exactly Limit items: the last page.
	l := httpx.NewList(ids[:3], httpx.Page{Limit: 3}, self)
	if len(l.Data) != 3 || l.NextCursor != nil {
		t.Errorf("3 items, limit 3: %d items, next_cursor %v; want 3 and none", len(l.Data), l.NextCursor)
	}
	// Fewer: the last page too.
	if l := httpx.NewList(ids[:2], httpx.Page{Limit: 3}, self); len(l.Data) != 2 || l.NextCursor != nil {
		t.Errorf("2 items, limit 3: %d items, next_cursor %v", len(l.Data), l.NextCursor)
	}
	// Limit+1: one page more, whose cursor is the last item returned.
	l = httpx.NewList(ids[:4], httpx.Page{Limit: 3}, self)
	if len(l.Data) != 3 || l.NextCursor == nil {
		t.Fatalf("4 items, limit 3: %d items, next_cursor %v; want 3 and a cursor", len(l.Data), l.NextCursor)
	}
	next, err := httpx.ParsePage(httptest.NewRequest("GET", "/?cursor="+*l.NextCursor, nil))
	if err != nil || next.Cursor != ids[2] {
		t.Errorf("next_cursor %q reads back as %v, %v; want %s", *l.NextCursor, next.Cursor, err, ids[2])
	}

	// No items: an empty array, not null, and next_cursor null.
	body, err := json.Marshal(httpx.NewList[uuid.UUID](nil, httpx.Page{Limit: 50}, self))
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != `{"data":[],"next_cursor":null}` {
		t.Errorf("an empty list marshals as %s", body)
	}
}

type decodeTarget struct {
	Name string `json:"name"`
}

func TestDecodeLimit(t *testing.T) {
	// A valid object padded with spaces to n bytes.
	body := func(n int) []byte {
		b := []byte(`{"name":"x"}`)
		return append(b, bytes.Repeat([]byte(" "), n-len(b))...)
	}
	for _, limit := range []int64{64, httpx.MaxBody} {
		var v decodeTarget
		r := httptest.NewRequest("POST", "/", bytes.NewReader(body(int(limit))))
		if err := httpx.Decode(r, &v, limit); err != nil || v.Name != "x" {
			t.Errorf("limit %d, body of exactly %d bytes: %v, %+v", limit, limit, err, v)
		}

		r = httptest.NewRequest("POST", "/", bytes.NewReader(body(int(limit)+1)))
		err := httpx.Decode(r, &v, limit)
		var e *errs.Error
		if !errors.As(err, &e) || e.Kind != errs.TooLarge || e.Code != "payload_too_large" {
			t.Errorf("limit %d, body of %d bytes: %v, want payload_too_large", limit, limit+1, err)
			continue
		}
		w := httptest.NewRecorder()
		httpx.Error(w, r, err)
		if w.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("limit %d, body of %d bytes: answered %d, want 413", limit, limit+1, w.Code)
		}
	}

	// limit <= 0 means the default, MaxBody.
	var v decodeTarget
	if err := httpx.Decode(httptest.NewRequest("POST", "/", bytes.NewReader(body(httpx.MaxBody))), &v, 0); err != nil {
		t.Errorf("limit 0, body of MaxBody bytes: %v", err)
	}
	if err := httpx.Decode(httptest.NewRequest("POST", "/", bytes.NewReader(body(httpx.MaxBody+1))), &v, 0); errs.KindOf(err) != errs.TooLarge {
		t.Errorf("limit 0, body of MaxBody+1 bytes: %v, want too large", err)
	}
}

func TestDecodeFields(t *testing.T) {
	type inner struct {
		N int `json:"n"`
	}
	type target struct {
		Name  string `json:"name"`
		Inner inner  `json:"inner"`
	}
	for _, c := range []struct{ body, field string }{
		{`{"name": 5}`, "name"},
		{`{"inner": {"n": "x"}}`, "inner.n"},
		{`{"name": "a", "extra": 1}`, "extra"},
		{`{"name": "a"} x`, "body"},
		{`{"name": "a"`, "body"},
		{`{"name": "a",}`, "body"},
		{`[1]`, "body"},
		{`   `, "body"},
	} {
		var v target
		fieldErr(t, c.body, httpx.DecodeBytes([]byte(c.body), &v), c.field)
	}
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{24}$`)

func TestWithRequestID(t *testing.T) {
	var seen string
	h := httpx.WithRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = httpx.RequestID(r.Context())
	}))
	run := func(incoming string, set bool) string {
		t.Helper()
		r := httptest.NewRequest("GET", "/", nil)
		if set {
			r.Header["X-Request-Id"] = []string{incoming}
		}
		w := httptest.NewRecorder()
		seen = ""
		h.ServeHTTP(w, r)
		got := w.Header().Get("X-Request-Id")
		if got != seen {
			t.Errorf("incoming %q: header %q, context %q: they differ", incoming, got, seen)
		}
		return got
	}

	for _, valid := range []string{"abc-123", "req_01HZX/4:5=6", strings.Repeat("a", 128), "~!"} {
		if got := run(valid, true); got != valid {
			t.Errorf("valid incoming %q answered as %q", valid, got)
		}
	}
	for _, invalid := range []string{"has space", strings.Repeat("a", 129), strings.Repeat("b", 200), "tab\there", "é", "nul\x00", "new\r\nX-Evil: 1", ""} {
		got := run(invalid, true)
		if got == invalid || !generatedID.MatchString(got) {
			t.Errorf("invalid incoming %q answered as %q, want a generated id", invalid, got)
		}
	}
	a, b := run("", false), run("", false)
	if !generatedID.MatchString(a) || a == b {
		t.Errorf("generated ids %q and %q: want two distinct 24-hex-digit ids", a, b)
	}
	if got := httpx.RequestID(httptest.NewRequest("GET", "/", nil).Context()); got != "" {
		t.Errorf("RequestID outside a request: %q", got)
	}
}

type retryErr struct{ error }

func (retryErr) SetHeaders(h http.Header) { h.Set("Retry-After", "7") }
func (e retryErr) Unwrap() error          { return e.error }

func TestError(t *testing.T) {
	serve := func(err error) (*httptest.ResponseRecorder, httpx.Problem) {
		t.Helper()
		w := httptest.NewRecorder()
		h := httpx.WithRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { httpx.Error(w, r, err) }))
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-Request-Id", "req-under-test")
		h.ServeHTTP(w, r)
		if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%v: Content-Type %q", err, ct)
		}
		var p httpx.Problem
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
			t.Fatalf("problem body %q: %v", w.Body, err)
		}
		if p.Status != w.Code || p.RequestID != "req-under-test" || p.Type == "" || p.Title == "" {
			t.Errorf("%v: problem %+v (status %d)", err, p, w.Code)
		}
		return w, p
	}

	t.Run("500 never leaks its cause", func(t *testing.T) {
		secret := `ERROR: relation "secret_table" does not exist (SQLSTATE 42P01) SELECT password_hash FROM users`
		for _, err := range []error{
			errors.New(secret),
			fmt.Errorf("load: %w", errors.New(secret)),
			errs.Wrap(errors.New(secret), errs.Internal, "db_exploded", "query "+secret),
			errs.E(errs.Internal, "oops", "%s", secret),
		} {
			w, p := serve(err)
			if w.Code != http.StatusInternalServerError || p.Code != "internal" {
				t.Errorf("%v: %d %q, want 500 internal", err, w.Code, p.Code)
			}
			for _, leak := range []string{"secret_table", "SELECT", "password_hash", "SQLSTATE", "db_exploded"} {
				if strings.Contains(w.Body.String(), leak) {
					t.Errorf("the 500 answer leaks %q: %s", leak, w.Body)
				}
			}
		}
	})

	t.Run("a dependency out of reach is a 503 to retry, its cause kept from the client", func(t *testing.T) {
		refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused 10.0.0.7:5432")}
		for _, err := range []error{
			fmt.Errorf("failed to connect to `user=app_runtime`: %w", refused),
			errs.Wrap(io.ErrUnexpectedEOF, errs.Internal, "internal", "the tenant's plan could not be read"),
		} {
			w, p := serve(err)
			if w.Code != http.StatusServiceUnavailable || p.Code != "dependency_unavailable" || w.Header().Get("Retry-After") == "" {
				t.Errorf("%v: %d %q Retry-After %q, want 503 dependency_unavailable with Retry-After", err, w.Code, p.Code, w.Header().Get("Retry-After"))
			}
			if strings.Contains(w.Body.String(), "10.0.0.7") || strings.Contains(w.Body.String(), "app_runtime") {
				t.Errorf("the 503 leaks its cause: %s", w.Body)
			}
		}
	})

	t.Run("401 asks for a bearer token", func(t *testing.T) {
		w, p := serve(errs.E(errs.Unauthenticated, "unauthorized", "a valid bearer token is required"))
		if w.Code != http.StatusUnauthorized || p.Code != "unauthorized" {
			t.Errorf("%d %q", w.Code, p.Code)
		}
		if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
			t.Errorf("WWW-Authenticate %q, want Bearer", got)
		}
	})

	t.Run("other statuses", func(t *testing.T) {
		for _, c := range []struct {
			kind   errs.Kind
			status int
		}{
			{errs.Invalid, 400}, {errs.Forbidden, 403}, {errs.NotFound, 404}, {errs.Conflict, 409},
			{errs.TooLarge, 413}, {errs.Unprocessable, 422}, {errs.RateLimited, 429},
			{errs.PaymentFailed, 402}, {errs.Unavailable, 503},
		} {
			w, p := serve(fmt.Errorf("wrapped: %w", errs.E(c.kind, "some_code", "shown to the client")))
			if w.Code != c.status || p.Code != "some_code" || p.Detail != "shown to the client" {
				t.Errorf("kind %v: %d %+v, want %d with code and detail kept", c.kind, w.Code, p, c.status)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != "" {
				t.Errorf("kind %v: WWW-Authenticate %q on a %d", c.kind, got, w.Code)
			}
		}
	})

	t.Run("validation fields", func(t *testing.T) {
		_, p := serve(errs.Validation(errs.FieldError{Field: "email", Message: "must be a valid email address"}))
		if len(p.Errors) != 1 || p.Errors[0].Field != "email" || p.Code != "validation_failed" {
			t.Errorf("problem %+v", p)
		}
	})

	t.Run("errors may set headers", func(t *testing.T) {
		w, _ := serve(retryErr{errs.E(errs.RateLimited, "rate_limited", "slow down")})
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "7" {
			t.Errorf("%d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
		}
	})
}
