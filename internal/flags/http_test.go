package flags

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/routers"
	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// testRouter serves the flag routes through the handlers' own Routes and OFREPRoutes, on
// routers laid out as internal/server lays them: request id and recovery, authentication,
// then for tenant routes the role check, the tenant directory and the snapshot pin, and for
// operator routes the platform check. dir stands in for tenant.Directory; nil lets every
// request through.
func testRouter(h *Handler, admin *AdminHandler, dir *fakeDirectory) chi.Router {
	requireActive := func(next http.Handler) http.Handler { return next }
	if dir != nil {
		requireActive = dir.RequireActive
	}
	tenantChain := []func(http.Handler) http.Handler{auth.RequireRole(auth.RoleMember), requireActive, h.Client.Middleware}

	r := chi.NewRouter()
	r.Use(httpx.WithRequestID, httpx.Recover)
	rs := httpx.Routers{Root: r, Public: r}
	authenticated := r.With(fakeAuthenticate)
	rs.Operator = authenticated.With(auth.RequirePlatformAdmin)
	rs.Member = authenticated.With(tenantChain...)
	rs.Admin = rs.Member.With(auth.RequireRole(auth.RoleAdmin))
	h.Routes(rs)
	admin.Routes(rs)
	r.Route("/ofrep/v1", func(r chi.Router) {
		r.Use(fakeAuthenticate)
		r.Use(tenantChain...)
		h.OFREPRoutes(r)
	})
	return r
}

func routesOf(t testing.TB, r chi.Router) []string {
	t.Helper()
	var out []string
	err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// fakeAuthenticate stands in for auth.Authenticator: "Bearer platform" is an operator,
// "Bearer tenant:<id>" a member of tenant id.
func fakeAuthenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		var p auth.Principal
		switch {
		case token == "platform":
			p = auth.Principal{Kind: auth.KindPlatform, Role: auth.RolePlatformAdmin}
		case strings.HasPrefix(token, "tenant:"):
			id, err := uuid.Parse(strings.TrimPrefix(token, "tenant:"))
			if err != nil {
				httpx.Error(w, r, auth.ErrUnauthorized)
				return
			}
			p = auth.Principal{Kind: auth.KindUser, TenantID: id, ID: uuid.New(), Role: auth.RoleMember}
		default:
			httpx.Error(w, r, auth.ErrUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

// fakeDirectory stands in for tenant.Directory: RequireActive puts the principal's tenant
// record in the context, and tenantFromContext (the Client's TenantFunc, as the server's
// would be built on tenant.FromContext) reads it back.
type fakeDirectory struct {
	mu      sync.Mutex
	tenants map[uuid.UUID]Tenant
}

type tenantCtxKey struct{}

func (d *fakeDirectory) add(t Tenant) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.tenants == nil {
		d.tenants = map[uuid.UUID]Tenant{}
	}
	d.tenants[t.ID] = t
}

func (d *fakeDirectory) RequireActive(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := auth.MustFromContext(r.Context())
		d.mu.Lock()
		t, ok := d.tenants[p.TenantID]
		d.mu.Unlock()
		if !ok {
			httpx.Error(w, r, auth.ErrUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tenantCtxKey{}, t)))
	})
}

func tenantFromContext(ctx context.Context) (Tenant, bool) {
	t, ok := ctx.Value(tenantCtxKey{}).(Tenant)
	return t, ok
}

// httpEnv is the flag routes served on loopback by one replica.
type httpEnv struct {
	url    string
	spec   routers.Router
	rep    *replica
	dir    *fakeDirectory
	client *http.Client
}

func newHTTPEnv(t testing.TB) *httpEnv {
	t.Helper()
	rep := newReplica(t, replicaOptions{})
	rep.client.Tenant = tenantFromContext
	dir := &fakeDirectory{}
	srv := httptest.NewServer(testRouter(&Handler{Client: rep.client}, &AdminHandler{Store: rep.store, Admin: rep.admin}, dir))
	t.Cleanup(srv.Close)
	_, spec := mergedSpec(t)
	return &httpEnv{url: srv.URL, spec: spec, rep: rep, dir: dir, client: srv.Client()}
}

// tenant adds a tenant to the database and the directory and answers its token.
func (e *httpEnv) tenant(t testing.TB, plan string) (uuid.UUID, string) {
	t.Helper()
	id := newTenant(t, plan)
	e.dir.add(Tenant{ID: id, Plan: plan, CreatedAt: time.Now().UTC()})
	return id, "tenant:" + id.String()
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a *answer) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("decode %s: %v", a.body, err)
	}
}

func (a *answer) problem(t testing.TB) httpx.Problem {
	t.Helper()
	if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("status %d with Content-Type %q, want a problem: %s", a.status, ct, a.body)
	}
	var p httpx.Problem
	a.decode(t, &p)
	return p
}

// do sends a request and checks the answer against the merged spec. A string body is sent
// as is; anything else is marshalled.
func (e *httpEnv) do(t testing.TB, method, path, token string, body any, header ...string) *answer {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	got, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	validateResponse(t, e.spec, req, raw, res.StatusCode, res.Header, got)
	return &answer{status: res.StatusCode, header: res.Header, body: got}
}

func (e *httpEnv) putFlag(t testing.TB, key string, in FlagInput) {
	t.Helper()
	if a := e.do(t, "PUT", "/v1/admin/flags/"+key, "platform", in); a.status != http.StatusCreated && a.status != http.StatusOK {
		t.Fatalf("PUT flag %s: %d %s", key, a.status, a.body)
	}
}

// evaluations answers GET /v1/flags by key.
func (e *httpEnv) evaluations(t testing.TB, token, query string) map[string]Evaluation {
	t.Helper()
	a := e.do(t, "GET", "/v1/flags"+query, token, nil)
	if a.status != http.StatusOK {
		t.Fatalf("GET /v1/flags: %d %s", a.status, a.body)
	}
	var list struct{ Data []Evaluation }
	a.decode(t, &list)
	out := map[string]Evaluation{}
	for i, ev := range list.Data {
		if i > 0 && ev.Key <= list.Data[i-1].Key {
			t.Errorf("flags are not ordered by key: %s after %s", ev.Key, list.Data[i-1].Key)
		}
		out[ev.Key] = ev
	}
	return out
}

func TestTenantEndpoints(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t)
	_, pro := e.tenant(t, "pro")
	_, free := e.tenant(t, "free")
	key, off := uniqueKey("rest"), uniqueKey("rest-off")
	in := flagInput(0, true)
	in.Rules = []Rule{{Conditions: []Condition{planIs("pro")}, Variant: "on"}, percent(50)}
	e.putFlag(t, key, in)
	e.putFlag(t, off, flagInput(100, false))

	got := e.evaluations(t, pro, "")
	if ev := got[key]; ev.Value != true || ev.Variant != "on" || ev.Reason != ReasonTargetingMatch {
		t.Errorf("pro tenant: %+v, want on by TARGETING_MATCH", ev)
	}
	if ev := got[off]; ev.Value != false || ev.Reason != ReasonDisabled {
		t.Errorf("disabled flag: %+v, want its default variant with DISABLED", ev)
	}
	if ev := e.evaluations(t, free, "?targeting_key=user-7")[key]; ev.Reason != ReasonSplit ||
		ev.Variant != map[bool]string{true: "on", false: "off"}[Bucket(key, "user-7") < Buckets/2] {
		t.Errorf("free tenant, user-7: %+v, want the split's answer for user-7", ev)
	}

	a := e.do(t, "GET", "/v1/flags/"+key, pro, nil)
	var one Evaluation
	a.decode(t, &one)
	if a.status != http.StatusOK || one.Key != key || one.Variant != "on" {
		t.Errorf("GET /v1/flags/%s: %d %+v", key, a.status, one)
	}
	if a := e.do(t, "GET", "/v1/flags/no-such-flag", pro, nil); a.status != http.StatusNotFound || a.problem(t).Code != "not_found" {
		t.Errorf("unknown flag: %d %s", a.status, a.body)
	}
	if a := e.do(t, "GET", "/v1/flags?targeting_key="+strings.Repeat("k", 257), pro, nil); a.status != http.StatusBadRequest {
		t.Errorf("a 257-character targeting key: %d", a.status)
	}
	if a := e.do(t, "GET", "/v1/flags", "", nil); a.status != http.StatusUnauthorized {
		t.Errorf("no credential: %d", a.status)
	}
	if a := e.do(t, "GET", "/v1/flags", "platform", nil); a.status != http.StatusForbidden {
		t.Errorf("an operator on a tenant route: %d", a.status)
	}
}

func TestOFREPSingle(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t)
	_, token := e.tenant(t, "free")
	key := uniqueKey("ofrep")
	in := flagInput(0, true)
	in.Rules = []Rule{{Conditions: []Condition{{Attribute: "country", Operator: OpIn, Values: []any{"fr"}}}, Variant: "on"}}
	e.putFlag(t, key, in)
	path := "/ofrep/v1/evaluate/flags/" + key

	var ev Evaluation
	a := e.do(t, "POST", path, token, `{"context":{"targetingKey":"user-1","country":"fr"}}`)
	a.decode(t, &ev)
	if a.status != http.StatusOK || ev != (Evaluation{Key: key, Value: true, Variant: "on", Reason: ReasonTargetingMatch}) {
		t.Errorf("matching context: %d %s", a.status, a.body)
	}
	a = e.do(t, "POST", path, token, nil) // the body is optional
	a.decode(t, &ev)
	if a.status != http.StatusOK || ev.Variant != "off" || ev.Reason != ReasonDefault {
		t.Errorf("no body: %d %s", a.status, a.body)
	}

	var fail struct {
		Key          string    `json:"key"`
		ErrorCode    ErrorCode `json:"errorCode"`
		ErrorDetails string    `json:"errorDetails"`
	}
	a = e.do(t, "POST", "/ofrep/v1/evaluate/flags/no-such-flag", token, `{"context":{}}`)
	a.decode(t, &fail)
	if a.status != http.StatusNotFound || fail.Key != "no-such-flag" || fail.ErrorCode != CodeFlagNotFound || fail.ErrorDetails == "" {
		t.Errorf("unknown flag: %d %s", a.status, a.body)
	}
	for _, tt := range []struct {
		body string
		code ErrorCode
	}{
		{`{"context": "fr"}`, CodeInvalidContext},
		{`{"context": ["fr"]}`, CodeInvalidContext},
		{`{"context": {"targetingKey": 42}}`, CodeInvalidContext},
		{`{"context": {"targetingKey": "` + strings.Repeat("k", 257) + `"}}`, CodeInvalidContext},
		{`{"context": {`, CodeParseError},
		{`[]`, CodeParseError},
		{`{"context": {}} {}`, CodeParseError},
	} {
		fail.Key, fail.ErrorCode = "", ""
		a := e.do(t, "POST", path, token, tt.body)
		a.decode(t, &fail)
		if a.status != http.StatusBadRequest || fail.ErrorCode != tt.code || fail.Key != key {
			t.Errorf("%s: %d %s, want 400 %s", tt.body, a.status, a.body, tt.code)
		}
	}
	if a := e.do(t, "POST", path, token, `{"context":{"x":"`+strings.Repeat("a", httpx.MaxBody)+`"}}`); a.status != http.StatusRequestEntityTooLarge {
		t.Errorf("an oversized body: %d", a.status)
	}
	if a := e.do(t, "POST", path, "", nil); a.status != http.StatusUnauthorized {
		t.Errorf("no credential: %d", a.status)
	}
}

// Unknown top-level members of a request are ignored, for forward compatibility (members
// inside context are targeting attributes, and always were allowed): a single and a bulk
// evaluation with one answer as without it.
func TestOFREPIgnoresUnknownMembers(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t)
	_, token := e.tenant(t, "free")
	key := uniqueKey("future")
	in := flagInput(0, true)
	in.Rules = []Rule{{Conditions: []Condition{{Attribute: "country", Operator: OpIn, Values: []any{"fr"}}}, Variant: "on"}}
	e.putFlag(t, key, in)
	const body = `{"context": {"targetingKey": "user-1", "country": "fr"}, "futureField": 1, "flags": ["x"]}`
	want := Evaluation{Key: key, Value: true, Variant: "on", Reason: ReasonTargetingMatch}

	var ev Evaluation
	a := e.do(t, "POST", "/ofrep/v1/evaluate/flags/"+key, token, body)
	a.decode(t, &ev)
	if a.status != http.StatusOK || ev != want {
		t.Errorf("single: %d %s, want 200 %+v", a.status, a.body, want)
	}
	var bulk struct{ Flags []Evaluation }
	a = e.do(t, "POST", "/ofrep/v1/evaluate/flags", token, body)
	a.decode(t, &bulk)
	if i := slices.IndexFunc(bulk.Flags, func(ev Evaluation) bool { return ev.Key == key }); a.status != http.StatusOK || i < 0 || bulk.Flags[i] != want {
		t.Errorf("bulk: %d %s, want 200 with %+v", a.status, a.body, want)
	}
}

func TestOFREPBulk(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t)
	_, token := e.tenant(t, "free")
	key := uniqueKey("bulk")
	in := flagInput(100, true)
	in.Rules = []Rule{{Conditions: []Condition{{Attribute: "country", Operator: OpIn, Values: []any{"fr"}}}, Variant: "off"}, percent(100)}
	e.putFlag(t, key, in)
	const path = "/ofrep/v1/evaluate/flags"
	body := `{"context":{"targetingKey":"user-1"}}`

	a := e.do(t, "POST", path, token, body)
	if a.status != http.StatusOK {
		t.Fatalf("bulk: %d %s", a.status, a.body)
	}
	var bulk struct{ Flags []Evaluation }
	a.decode(t, &bulk)
	i := slices.IndexFunc(bulk.Flags, func(ev Evaluation) bool { return ev.Key == key })
	if i < 0 || bulk.Flags[i].Value != true || bulk.Flags[i].Reason != ReasonSplit {
		t.Fatalf("bulk answer lacks %s (on, SPLIT): %s", key, a.body)
	}
	etag := a.header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}

	for _, inm := range []string{etag, "W/" + etag, `"stale", ` + etag, "*"} {
		if a := e.do(t, "POST", path, token, body, "If-None-Match", inm); a.status != http.StatusNotModified || len(a.body) != 0 || a.header.Get("ETag") != etag {
			t.Errorf("If-None-Match %s: %d (ETag %s), want 304", inm, a.status, a.header.Get("ETag"))
		}
	}
	// Another context with other answers is another representation.
	if a := e.do(t, "POST", path, token, `{"context":{"targetingKey":"user-1","country":"fr"}}`, "If-None-Match", etag); a.status != http.StatusOK || a.header.Get("ETag") == etag {
		t.Errorf("a context with other answers, with the old ETag: %d (ETag %s)", a.status, a.header.Get("ETag"))
	}
	e.putFlag(t, key, flagInput(100, false))
	a = e.do(t, "POST", path, token, body, "If-None-Match", etag)
	if a.status != http.StatusOK || a.header.Get("ETag") == etag {
		t.Errorf("after a change, the old ETag answered %d with ETag %s", a.status, a.header.Get("ETag"))
	}

	var fail struct {
		Key       *string   `json:"key"`
		ErrorCode ErrorCode `json:"errorCode"`
	}
	a = e.do(t, "POST", path, token, `{"context": 7}`)
	a.decode(t, &fail)
	if a.status != http.StatusBadRequest || fail.ErrorCode != CodeInvalidContext || fail.Key != nil {
		t.Errorf("invalid context: %d %s", a.status, a.body)
	}
	a = e.do(t, "POST", path, token, `{"context": `)
	a.decode(t, &fail)
	if a.status != http.StatusBadRequest || fail.ErrorCode != CodeParseError {
		t.Errorf("unparsable body: %d %s", a.status, a.body)
	}
}

// Tenant A never reads B's overrides, whatever it sends: its own targeting key, B's id as
// targeting key, or B's id (and plan) in its context. Only B's own requests see them.
func TestATenantNeverSeesAnotherTenantsOverride(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t)
	idA, tokenA := e.tenant(t, "free")
	idB, tokenB := e.tenant(t, "free")
	key := uniqueKey("isolated")
	e.putFlag(t, key, flagInput(0, true))
	if a := e.do(t, "PUT", "/v1/admin/flags/"+key+"/overrides/"+idB.String(), "platform", OverrideInput{Variant: "on"}); a.status != http.StatusCreated {
		t.Fatalf("override: %d %s", a.status, a.body)
	}

	spoofs := []string{
		`{}`,
		`{"context":{"targetingKey":"` + idB.String() + `"}}`,
		`{"context":{"targetingKey":"` + idB.String() + `","tenant_id":"` + idB.String() + `","plan":"enterprise"}}`,
	}
	queries := []string{"", "?targeting_key=" + idB.String()}
	check := func(who string, ev Evaluation, wantOn bool) {
		t.Helper()
		if (ev.Value == true) != wantOn {
			t.Errorf("%s: %+v", who, ev)
		}
	}
	for _, q := range queries {
		check("A, GET /v1/flags"+q, e.evaluations(t, tokenA, q)[key], false)
		check("B, GET /v1/flags"+q, e.evaluations(t, tokenB, q)[key], true)
		var ev Evaluation
		e.do(t, "GET", "/v1/flags/"+key+q, tokenA, nil).decode(t, &ev)
		check("A, GET /v1/flags/{key}"+q, ev, false)
	}
	for _, body := range spoofs {
		var ev Evaluation
		e.do(t, "POST", "/ofrep/v1/evaluate/flags/"+key, tokenA, body).decode(t, &ev)
		check("A, OFREP "+body, ev, false)
		e.do(t, "POST", "/ofrep/v1/evaluate/flags/"+key, tokenB, body).decode(t, &ev)
		check("B, OFREP "+body, ev, true)
		var bulk struct{ Flags []Evaluation }
		e.do(t, "POST", "/ofrep/v1/evaluate/flags", tokenA, body).decode(t, &bulk)
		for _, ev := range bulk.Flags {
			if ev.Key == key {
				check("A, OFREP bulk "+body, ev, false)
			}
		}
	}
	// Overrides are listed to operators only.
	for _, path := range []string{"/v1/admin/flags/" + key + "/overrides", "/v1/admin/flags/" + key + "/audit", "/v1/admin/flags"} {
		if a := e.do(t, "GET", path, tokenA, nil); a.status != http.StatusForbidden {
			t.Errorf("tenant A on %s: %d", path, a.status)
		}
	}
	_ = idA
}

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t)
	tenantID, tenantToken := e.tenant(t, "free")
	key := uniqueKey("admin")
	base := "/v1/admin/flags/" + key

	in := flagInput(25, true)
	in.Key, in.Description = key, "A flag made over HTTP."
	a := e.do(t, "PUT", base, "platform", in, "X-Request-Id", "req-create-1")
	var f Flag
	a.decode(t, &f)
	if a.status != http.StatusCreated || f.Key != key || f.Salt != key || f.Description != in.Description {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	if a := e.do(t, "PUT", base, "platform", in); a.status != http.StatusOK {
		t.Errorf("unchanged PUT: %d", a.status)
	}
	if a := e.do(t, "GET", base, "platform", nil); a.status != http.StatusOK {
		t.Errorf("GET: %d", a.status)
	}
	var list struct{ Data []Flag }
	e.do(t, "GET", "/v1/admin/flags", "platform", nil).decode(t, &list)
	if !slices.ContainsFunc(list.Data, func(f Flag) bool { return f.Key == key }) {
		t.Errorf("the list lacks %s", key)
	}

	for _, tt := range []struct {
		body  string
		field string
	}{
		{`{"type":"boolean","variants":{"on":true},"default_variant":"off","enabled":true}`, "default_variant"},
		{`{"type":"boolean","variants":{"on":true,"off":false},"default_variant":"off","enabled":true,"rules":[{"split":[{"variant":"on","weight":50}]}]}`, "rules[0].split"},
		{`{"type":"number","variants":{"on":"1"},"default_variant":"on","enabled":true}`, "variants.on"},
		{`{"type":"boolean","variants":{"on":true},"default_variant":"on","enabled":true,"colour":"red"}`, "colour"},
		{`{"key":"other","type":"boolean","variants":{"on":true},"default_variant":"on","enabled":true}`, "key"},
	} {
		a := e.do(t, "PUT", base, "platform", tt.body)
		if a.status != http.StatusBadRequest || !slices.ContainsFunc(a.problem(t).Errors, func(fe errs.FieldError) bool { return fe.Field == tt.field }) {
			t.Errorf("%s: %d %s, want a 400 naming %s", tt.body, a.status, a.body, tt.field)
		}
	}

	overrides := base + "/overrides/" + tenantID.String()
	if a := e.do(t, "PUT", overrides, "platform", OverrideInput{Variant: "on"}); a.status != http.StatusCreated {
		t.Errorf("new override: %d %s", a.status, a.body)
	}
	if a := e.do(t, "PUT", overrides, "platform", OverrideInput{Variant: "off"}); a.status != http.StatusOK {
		t.Errorf("changed override: %d %s", a.status, a.body)
	}
	if a := e.do(t, "PUT", overrides, "platform", OverrideInput{Variant: "maybe"}); a.status != http.StatusBadRequest {
		t.Errorf("unknown variant: %d", a.status)
	}
	if a := e.do(t, "PUT", base+"/overrides/"+uuid.NewString(), "platform", OverrideInput{Variant: "on"}); a.status != http.StatusNotFound {
		t.Errorf("unknown tenant: %d", a.status)
	}
	if a := e.do(t, "PUT", base+"/overrides/acme", "platform", OverrideInput{Variant: "on"}); a.status != http.StatusBadRequest {
		t.Errorf("a tenant id that is not a UUID: %d", a.status)
	}
	var page struct {
		Data       []Override
		NextCursor *string `json:"next_cursor"`
	}
	e.do(t, "GET", base+"/overrides", "platform", nil).decode(t, &page)
	if len(page.Data) != 1 || page.Data[0] != (Override{FlagKey: key, TenantID: tenantID, Variant: "off"}) || page.NextCursor != nil {
		t.Errorf("overrides: %+v", page)
	}
	if a := e.do(t, "DELETE", overrides, "platform", nil); a.status != http.StatusNoContent {
		t.Errorf("delete override: %d", a.status)
	}
	if a := e.do(t, "DELETE", overrides, "platform", nil); a.status != http.StatusNotFound {
		t.Errorf("delete it again: %d", a.status)
	}

	if a := e.do(t, "DELETE", base, "platform", nil); a.status != http.StatusNoContent {
		t.Errorf("delete: %d", a.status)
	}
	if a := e.do(t, "GET", base, "platform", nil); a.status != http.StatusNotFound {
		t.Errorf("GET after delete: %d", a.status)
	}
	if a := e.do(t, "GET", "/v1/admin/flags/no-such/overrides", "platform", nil); a.status != http.StatusNotFound {
		t.Errorf("overrides of no flag: %d", a.status)
	}

	var trail struct {
		Data       []AuditEntry
		NextCursor *string `json:"next_cursor"`
	}
	e.do(t, "GET", base+"/audit?limit=2", "platform", nil).decode(t, &trail)
	if len(trail.Data) != 2 || trail.NextCursor == nil || trail.Data[0].Action != "flag.deleted" {
		t.Fatalf("first audit page: %+v", trail)
	}
	e.do(t, "GET", base+"/audit?limit=200&cursor="+*trail.NextCursor, "platform", nil).decode(t, &trail)
	if len(trail.Data) != 3 || trail.NextCursor != nil {
		t.Fatalf("second audit page: %+v", trail)
	}
	created := trail.Data[2]
	if created.Action != "flag.created" || created.Actor != "platform_admin" || created.RequestID == nil || *created.RequestID != "req-create-1" {
		t.Errorf("the creation's audit row: %+v", created)
	}

	if a := e.do(t, "GET", "/v1/admin/flags", tenantToken, nil); a.status != http.StatusForbidden {
		t.Errorf("a tenant on an operator route: %d", a.status)
	}
}
