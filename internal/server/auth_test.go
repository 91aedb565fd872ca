package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// The helpers of this file are prefixed with auth so that they cannot clash with the
// helpers of the package's other test files.

// authUserPassword is the password of the users authAddUser creates.
const authUserPassword = "another long enough password"

type authPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

type authMe struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Email string `json:"email"`
	Name  string `json:"name"`
	Role  string `json:"role"`
}

func authGet(t testing.TB, s *servertest.Server, token, path string) *servertest.Response {
	t.Helper()
	return s.Do(t, servertest.Request{Method: "GET", Path: path, Token: token})
}

// authWant checks an answer's status and, when code is set, its problem code.
func authWant(t testing.TB, res *servertest.Response, status int, code string) {
	t.Helper()
	if res.Status != status {
		t.Fatalf("status %d, want %d: %s", res.Status, status, res.Body)
	}
	if code != "" {
		if p := res.Problem(t); p.Code != code {
			t.Fatalf("code %q, want %q: %s", p.Code, code, res.Body)
		}
	}
}

// authWantUnauthorized checks the 401 every bad credential gets.
func authWantUnauthorized(t testing.TB, res *servertest.Response) {
	t.Helper()
	authWant(t, res, http.StatusUnauthorized, "unauthorized")
	if h := res.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
		t.Fatalf("WWW-Authenticate %q, want Bearer...", h)
	}
}

func authPasswordGrant(t testing.TB, s *servertest.Server, slug, email, password string) *servertest.Response {
	t.Helper()
	return s.Do(t, servertest.Request{Method: "POST", Path: "/v1/auth/token", Body: map[string]string{
		"grant_type": "password", "tenant": slug, "email": email, "password": password,
	}})
}

func authRefreshGrant(t testing.TB, s *servertest.Server, refresh string) *servertest.Response {
	t.Helper()
	return s.Do(t, servertest.Request{Method: "POST", Path: "/v1/auth/token", Body: map[string]string{
		"grant_type": "refresh_token", "refresh_token": refresh,
	}})
}

func authDecodePair(t testing.TB, res *servertest.Response) authPair {
	t.Helper()
	authWant(t, res, http.StatusOK, "")
	var p authPair
	res.Decode(t, &p)
	if p.AccessToken == "" || p.RefreshToken == "" || p.TokenType != "Bearer" {
		t.Fatalf("not a token pair: %s", res.Body)
	}
	return p
}

func authLogin(t testing.TB, s *servertest.Server, slug, email, password string) authPair {
	t.Helper()
	return authDecodePair(t, authPasswordGrant(t, s, slug, email, password))
}

func authRefresh(t testing.TB, s *servertest.Server, refresh string) authPair {
	t.Helper()
	return authDecodePair(t, authRefreshGrant(t, s, refresh))
}

// authAddUser creates a user of role in the tenant, as its owner, with authUserPassword.
func authAddUser(t testing.TB, s *servertest.Server, tn servertest.Tenant, role string) (id, email string) {
	t.Helper()
	email = role + "-" + uuid.NewString()[:8] + "@" + tn.Slug + ".example.com"
	id = s.Create(t, tn.Token, "/v1/users", map[string]string{"email": email, "password": authUserPassword, "role": role})
	return id, email
}

// authUserToken creates a user of role and signs it in.
func authUserToken(t testing.TB, s *servertest.Server, tn servertest.Tenant, role string) (id string, pair authPair) {
	t.Helper()
	id, email := authAddUser(t, s, tn, role)
	return id, authLogin(t, s, tn.Slug, email, authUserPassword)
}

func authMeOf(t testing.TB, s *servertest.Server, token string) authMe {
	t.Helper()
	res := authGet(t, s, token, "/v1/me")
	authWant(t, res, http.StatusOK, "")
	var me authMe
	res.Decode(t, &me)
	return me
}

type authJWK struct {
	Kid string `json:"kid"`
	X   string `json:"x"`
}

func authJWKS(t testing.TB, s *servertest.Server) []authJWK {
	t.Helper()
	res := authGet(t, s, "", "/.well-known/jwks.json")
	authWant(t, res, http.StatusOK, "")
	var set struct{ Keys []authJWK }
	res.Decode(t, &set)
	return set.Keys
}

// authThumbprint is the RFC 7638 thumbprint of an Ed25519 public key, computed here
// independently of the service.
func authThumbprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func authSign(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("signing a %s token: %v", m.Alg(), err)
	}
	return s
}

// authTamper rewrites claims of a signed token and keeps its signature.
func authTamper(t testing.TB, token string, set map[string]any) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		claims[k] = v
	}
	if raw, err = json.Marshal(claims); err != nil {
		t.Fatal(err)
	}
	out := parts[0] + "." + base64.RawURLEncoding.EncodeToString(raw) + "." + parts[2]
	if out == token {
		t.Fatal("tampering changed nothing")
	}
	return out
}

func authRandomSeed(t testing.TB) []byte {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		t.Fatal(err)
	}
	return seed
}

// TestJWTForgeriesAreRefused: every token that was not signed by the service for this
// service, or was changed after signing, is a 401 on GET /v1/me.
func TestJWTForgeriesAreRefused(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "jwt")
	b := s.Signup(t, "jwt-other")
	memberID, member := authUserToken(t, s, a, "member")

	priv := ed25519.NewKeyFromSeed(s.Config.JWTSigningKey)
	pub := priv.Public().(ed25519.PublicKey)
	keys := authJWKS(t, s)
	if len(keys) != 1 || keys[0].Kid != authThumbprint(pub) {
		t.Fatalf("JWKS %+v, want the one current key with kid %s", keys, authThumbprint(pub))
	}
	kid := keys[0].Kid
	other := ed25519.NewKeyFromSeed(authRandomSeed(t))
	otherKid := authThumbprint(other.Public().(ed25519.PublicKey))

	now := time.Now()
	claims := func(change func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{
			"iss": s.Config.JWTIssuer, "aud": s.Config.JWTAudience,
			"sub": memberID, "tid": a.ID, "role": "member",
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": uuid.NewString(),
		}
		if change != nil {
			change(c)
		}
		return c
	}

	// The control: built the same way with nothing wrong, the token is accepted, so each
	// refusal below is due to its one defect.
	if me := authMeOf(t, s, authSign(t, jwt.SigningMethodEdDSA, priv, kid, claims(nil))); me.ID != memberID || me.Role != "member" {
		t.Fatalf("control token: /v1/me = %+v", me)
	}
	authMeOf(t, s, member.AccessToken)

	cases := []struct {
		name  string
		token string
	}{
		{"alg none", authSign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, claims(nil))},
		{"alg none claiming owner", authSign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid,
			claims(func(c jwt.MapClaims) { c["role"] = "owner" }))},
		{"HS256 keyed with the public key bytes", authSign(t, jwt.SigningMethodHS256, []byte(pub), kid, claims(nil))},
		{"HS256 keyed with the JWK x", authSign(t, jwt.SigningMethodHS256, []byte(keys[0].X), kid, claims(nil))},
		{"HS256 keyed with the base64 public key", authSign(t, jwt.SigningMethodHS256,
			[]byte(auth.PublicKeyBase64(s.Config.JWTSigningKey)), kid, claims(nil))},
		{"wrong aud", authSign(t, jwt.SigningMethodEdDSA, priv, kid, claims(func(c jwt.MapClaims) { c["aud"] = "another-api" }))},
		{"no aud", authSign(t, jwt.SigningMethodEdDSA, priv, kid, claims(func(c jwt.MapClaims) { delete(c, "aud") }))},
		{"wrong iss", authSign(t, jwt.SigningMethodEdDSA, priv, kid, claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }))},
		{"no iss", authSign(t, jwt.SigningMethodEdDSA, priv, kid, claims(func(c jwt.MapClaims) { delete(c, "iss") }))},
		{"no exp", authSign(t, jwt.SigningMethodEdDSA, priv, kid, claims(func(c jwt.MapClaims) { delete(c, "exp") }))},
		{"expired", authSign(t, jwt.SigningMethodEdDSA, priv, kid, claims(func(c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		}))},
		{"unknown kid", authSign(t, jwt.SigningMethodEdDSA, priv, "no-such-key", claims(nil))},
		{"no kid", authSign(t, jwt.SigningMethodEdDSA, priv, "", claims(nil))},
		{"another key with its own kid", authSign(t, jwt.SigningMethodEdDSA, other, otherKid, claims(nil))},
		{"another key under the service's kid", authSign(t, jwt.SigningMethodEdDSA, other, kid, claims(nil))},
		{"member token tampered to owner", authTamper(t, member.AccessToken, map[string]any{"role": "owner"})},
		{"member token tampered to another tenant", authTamper(t, member.AccessToken, map[string]any{"tid": b.ID, "sub": b.OwnerID})},
		{"member token tampered to platform_admin", authTamper(t, member.AccessToken, map[string]any{"role": "platform_admin", "tid": ""})},
		{"signature cut off", strings.Join(strings.Split(member.AccessToken, ".")[:2], ".") + "."},
		{"garbage", "not-a-token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			authWantUnauthorized(t, authGet(t, s, tc.token, "/v1/me"))
		})
	}
	t.Run("no credential", func(t *testing.T) {
		authWantUnauthorized(t, authGet(t, s, "", "/v1/me"))
	})
}

// TestJWTKeyRotation: after a rotation the old key's tokens stay valid while its public key
// is listed among the previous keys, and not once it is dropped.
func TestJWTKeyRotation(t *testing.T) {
	oldSeed, newSeed := authRandomSeed(t), authRandomSeed(t)
	oldPub := ed25519.NewKeyFromSeed(oldSeed).Public().(ed25519.PublicKey)
	newPub := ed25519.NewKeyFromSeed(newSeed).Public().(ed25519.PublicKey)

	before := servertest.New(t, func(c *config.Config) { c.JWTSigningKey = oldSeed })
	a := before.Signup(t, "rotate") // its token is signed with the old key

	during := servertest.New(t, func(c *config.Config) {
		c.JWTSigningKey = newSeed
		c.JWTPreviousKeys = auth.PublicKeyBase64(oldSeed)
	})
	after := servertest.New(t, func(c *config.Config) { c.JWTSigningKey = newSeed })

	if me := authMeOf(t, during, a.Token); me.ID != a.OwnerID {
		t.Fatalf("old token on the rotated server: /v1/me = %+v", me)
	}
	keys := authJWKS(t, during)
	if len(keys) != 2 || keys[0].Kid != authThumbprint(newPub) || keys[1].Kid != authThumbprint(oldPub) {
		t.Fatalf("JWKS during the rotation = %+v, want the new kid %s then the old kid %s", keys, authThumbprint(newPub), authThumbprint(oldPub))
	}
	if keys[1].X != base64.RawURLEncoding.EncodeToString(oldPub) {
		t.Fatalf("JWKS lists the old key as x=%s, want %s", keys[1].X, base64.RawURLEncoding.EncodeToString(oldPub))
	}

	// Tokens the rotated server issues are signed with the new key.
	fresh := authLogin(t, during, a.Slug, a.OwnerEmail, servertest.Password)
	authMeOf(t, after, fresh.AccessToken)
	authWantUnauthorized(t, authGet(t, before, fresh.AccessToken, "/v1/me"))

	// Once the old key is dropped, its tokens are refused.
	authWantUnauthorized(t, authGet(t, after, a.Token, "/v1/me"))
	if keys := authJWKS(t, after); len(keys) != 1 || keys[0].Kid != authThumbprint(newPub) {
		t.Fatalf("JWKS after the rotation = %+v, want only %s", keys, authThumbprint(newPub))
	}
}

type authKey struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	Role      string  `json:"role"`
	Key       *string `json:"key"`
	CreatedAt string  `json:"created_at"`
}

func authCreateKey(t testing.TB, s *servertest.Server, token, name, role string) authKey {
	t.Helper()
	res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/api-keys", Token: token, Body: map[string]string{"name": name, "role": role}})
	authWant(t, res, http.StatusCreated, "")
	var k authKey
	res.Decode(t, &k)
	if k.Key == nil || k.ID == "" {
		t.Fatalf("created key without key or id: %s", res.Body)
	}
	return k
}

func TestAPIKeyLifecycle(t *testing.T) {
	ctx := context.Background()
	s := servertest.New(t)
	a := s.Signup(t, "keys")

	k := authCreateKey(t, s, a.Token, "ci", "member")
	key := *k.Key
	if !strings.HasPrefix(key, "sk_test_") {
		t.Fatalf("key %q, want the sk_test_ prefix outside production", key)
	}
	id, secret, ok := auth.ParseAPIKey(key)
	if !ok || id.String() != k.ID {
		t.Fatalf("key %q does not carry its id %s", key, k.ID)
	}
	secretHex := hex.EncodeToString(secret)

	// The list never shows the secret, before or after the key is used.
	listKeys := func() []map[string]any {
		t.Helper()
		res := authGet(t, s, a.Token, "/v1/api-keys")
		authWant(t, res, http.StatusOK, "")
		if bytes.Contains(res.Body, []byte(secretHex)) {
			t.Fatalf("GET /v1/api-keys shows the secret: %s", res.Body)
		}
		var list struct{ Data []map[string]any }
		res.Decode(t, &list)
		for _, item := range list.Data {
			if _, ok := item["key"]; ok {
				t.Fatalf("GET /v1/api-keys returns key: %s", res.Body)
			}
		}
		return list.Data
	}
	if l := listKeys(); len(l) != 1 || l[0]["id"] != k.ID {
		t.Fatalf("GET /v1/api-keys = %v, want the one key", l)
	}

	me := authMeOf(t, s, key)
	if me.Kind != "api_key" || me.ID != k.ID || me.Name != "ci" || me.Role != "member" {
		t.Fatalf("/v1/me with the key = %+v", me)
	}
	listKeys()

	// The database holds a hash only: neither the key nor its secret, in any encoding, in
	// any column of api_keys or in the event log.
	conn := pgtest.Owner(t)
	var hash []byte
	if err := conn.QueryRow(ctx, "SELECT secret_hash FROM api_keys WHERE id = $1", k.ID).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if len(hash) == 0 || bytes.Contains(hash, secret) || bytes.Contains(hash, []byte(secretHex)) {
		t.Fatalf("secret_hash %x holds the secret", hash)
	}
	for _, table := range []string{"api_keys", "outbox"} {
		var all string
		if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM %s t", table)).Scan(&all); err != nil {
			t.Fatal(err)
		}
		for _, leak := range []string{key, secretHex, base64.StdEncoding.EncodeToString(secret), base64.RawURLEncoding.EncodeToString(secret)} {
			if strings.Contains(all, leak) {
				t.Fatalf("table %s holds the API key's secret (%q)", table, leak)
			}
		}
	}

	// Revoked: refused from then on, and no longer listed.
	authWant(t, s.Do(t, servertest.Request{Method: "DELETE", Path: "/v1/api-keys/" + k.ID, Token: a.Token}), http.StatusNoContent, "")
	authWantUnauthorized(t, authGet(t, s, key, "/v1/me"))
	authWantUnauthorized(t, authGet(t, s, key, "/v1/projects"))
	if l := listKeys(); len(l) != 0 {
		t.Fatalf("a revoked key is listed: %v", l)
	}
	authWant(t, s.Do(t, servertest.Request{Method: "DELETE", Path: "/v1/api-keys/" + k.ID, Token: a.Token}), http.StatusNotFound, "not_found")

	// A key with one changed character of its secret, or with the live prefix, is refused.
	k2 := *authCreateKey(t, s, a.Token, "second", "member").Key
	authMeOf(t, s, k2)
	flip := byte('0')
	if k2[len(k2)-1] == '0' {
		flip = '1'
	}
	authWantUnauthorized(t, authGet(t, s, k2[:len(k2)-1]+string(flip), "/v1/me"))
	authWantUnauthorized(t, authGet(t, s, "sk_live_"+strings.TrimPrefix(k2, "sk_test_"), "/v1/me"))
}

func TestAPIKeyCannotReachAnotherTenant(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "keys-a")
	b := s.Signup(t, "keys-b")
	aKey := *authCreateKey(t, s, a.Token, "a-admin", "admin").Key
	bKey := authCreateKey(t, s, b.Token, "b-admin", "admin")
	bProject := s.Create(t, b.Token, "/v1/projects", map[string]string{"name": "b-secret"})

	for _, req := range []servertest.Request{
		{Method: "GET", Path: "/v1/projects/" + bProject},
		{Method: "PATCH", Path: "/v1/projects/" + bProject, Body: map[string]string{"name": "stolen"}},
		{Method: "DELETE", Path: "/v1/projects/" + bProject},
		{Method: "GET", Path: "/v1/users/" + b.OwnerID},
		{Method: "PATCH", Path: "/v1/users/" + b.OwnerID, Body: map[string]string{"role": "member"}},
		{Method: "DELETE", Path: "/v1/users/" + b.OwnerID},
		{Method: "DELETE", Path: "/v1/api-keys/" + bKey.ID},
	} {
		req.Token = aKey
		res := s.Do(t, req)
		if res.Status != http.StatusNotFound || res.Problem(t).Code != "not_found" {
			t.Errorf("%s %s with tenant A's key: %d %s, want 404 not_found", req.Method, req.Path, res.Status, res.Body)
		}
	}
	for _, path := range []string{"/v1/projects", "/v1/users", "/v1/api-keys", "/v1/events", "/v1/tenant", "/v1/me"} {
		res := authGet(t, s, aKey, path+"?limit=200")
		authWant(t, res, http.StatusOK, "")
		for _, leak := range []string{b.ID, b.OwnerID, bProject, bKey.ID, b.Slug} {
			if bytes.Contains(res.Body, []byte(leak)) {
				t.Errorf("GET %s with tenant A's key shows tenant B's %s: %s", path, leak, res.Body)
			}
		}
	}

	// B's things are untouched.
	res := authGet(t, s, b.Token, "/v1/projects/"+bProject)
	authWant(t, res, http.StatusOK, "")
	var p struct{ Name string }
	res.Decode(t, &p)
	if p.Name != "b-secret" {
		t.Fatalf("tenant B's project is now %q", p.Name)
	}
	authMeOf(t, s, *bKey.Key)
	authMeOf(t, s, b.Token)
}

func TestAPIKeyRoles(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "keyroles")
	_, member := authUserToken(t, s, a, "member")
	_, admin := authUserToken(t, s, a, "admin")

	res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/api-keys", Token: member.AccessToken, Body: map[string]string{"name": "m", "role": "member"}})
	authWant(t, res, http.StatusForbidden, "forbidden")

	res = s.Do(t, servertest.Request{Method: "POST", Path: "/v1/api-keys", Token: admin.AccessToken, Body: map[string]string{"name": "o", "role": "owner"}})
	authWant(t, res, http.StatusForbidden, "forbidden")

	adminKey := authCreateKey(t, s, admin.AccessToken, "a", "admin")
	res = s.Do(t, servertest.Request{Method: "POST", Path: "/v1/api-keys", Token: *adminKey.Key, Body: map[string]string{"name": "o", "role": "owner"}})
	authWant(t, res, http.StatusForbidden, "forbidden")

	memberKey := authCreateKey(t, s, a.Token, "m", "member")
	authWant(t, authGet(t, s, *memberKey.Key, "/v1/api-keys"), http.StatusForbidden, "forbidden")
	res = s.Do(t, servertest.Request{Method: "POST", Path: "/v1/api-keys", Token: *memberKey.Key, Body: map[string]string{"name": "x", "role": "member"}})
	authWant(t, res, http.StatusForbidden, "forbidden")

	authCreateKey(t, s, a.Token, "owner-made", "owner")
}

func TestPasswordGrant(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "login")

	pair := authLogin(t, s, a.Slug, a.OwnerEmail, servertest.Password)
	if pair.ExpiresIn < 1 || pair.ExpiresIn > 15*60 {
		t.Fatalf("expires_in %d, want 1..900", pair.ExpiresIn)
	}
	if me := authMeOf(t, s, pair.AccessToken); me.ID != a.OwnerID || me.Kind != "user" || me.Role != "owner" {
		t.Fatalf("/v1/me = %+v", me)
	}
	// The email is matched whatever its case.
	authLogin(t, s, a.Slug, strings.ToUpper(a.OwnerEmail), servertest.Password)

	var first servertest.Problem
	for i, c := range []struct{ name, slug, email, password string }{
		{"wrong password", a.Slug, a.OwnerEmail, servertest.Password + "!"},
		{"unknown email", a.Slug, "nobody@" + a.Slug + ".example.com", servertest.Password},
		{"unknown tenant", "no-such-tenant-" + uuid.NewString()[:8], a.OwnerEmail, servertest.Password},
	} {
		res := authPasswordGrant(t, s, c.slug, c.email, c.password)
		if res.Status != http.StatusUnauthorized {
			t.Fatalf("%s: %d %s, want 401", c.name, res.Status, res.Body)
		}
		p := res.Problem(t)
		if p.Code != "invalid_credentials" {
			t.Fatalf("%s: code %q, want invalid_credentials", c.name, p.Code)
		}
		// The three answers are the same, so none tells which part was wrong.
		if i == 0 {
			first = p
		} else if p.Detail != first.Detail || p.Status != first.Status || len(p.Errors) != len(first.Errors) {
			t.Fatalf("%s answers %+v, the wrong password %+v: they differ", c.name, p, first)
		}
	}
}

func TestRefreshTokenRotationAndReuse(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "refresh")

	p1 := authLogin(t, s, a.Slug, a.OwnerEmail, servertest.Password)
	other := authLogin(t, s, a.Slug, a.OwnerEmail, servertest.Password) // another session (family)

	p2 := authRefresh(t, s, p1.RefreshToken)
	if p2.RefreshToken == p1.RefreshToken {
		t.Fatal("the refresh token did not rotate")
	}
	authMeOf(t, s, p2.AccessToken)
	p3 := authRefresh(t, s, p2.RefreshToken) // the new token works, once

	// p2 is spent: presenting it again is refused and revokes the whole family...
	authWantUnauthorized(t, authRefreshGrant(t, s, p2.RefreshToken))
	// ...so the newest token of the family, never used, is refused too.
	authWantUnauthorized(t, authRefreshGrant(t, s, p3.RefreshToken))
	authWantUnauthorized(t, authRefreshGrant(t, s, p1.RefreshToken))

	// Another session of the same user is not affected.
	authRefresh(t, s, other.RefreshToken)

	// Malformed refresh tokens are refused the same way.
	authWantUnauthorized(t, authRefreshGrant(t, s, "rt_not-a-token"))
	authWantUnauthorized(t, authRefreshGrant(t, s, p3.RefreshToken[:len(p3.RefreshToken)-2]+"AA"))
}

func TestRevokeEndsTheSession(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "logout")

	p1 := authLogin(t, s, a.Slug, a.OwnerEmail, servertest.Password)
	p2 := authRefresh(t, s, p1.RefreshToken)
	other := authLogin(t, s, a.Slug, a.OwnerEmail, servertest.Password)

	revoke := func(token string) {
		t.Helper()
		authWant(t, s.Do(t, servertest.Request{Method: "POST", Path: "/v1/auth/revoke", Body: map[string]string{"refresh_token": token}}), http.StatusNoContent, "")
	}
	revoke(p2.RefreshToken)
	authWantUnauthorized(t, authRefreshGrant(t, s, p2.RefreshToken))
	revoke(p2.RefreshToken) // twice is fine
	revoke("rt_unknown")    // unknown is fine

	// Revoking one token revokes its family, not the user's other sessions.
	authRefresh(t, s, other.RefreshToken)
	// Revoking an already spent token of a family revokes the family too.
	q1 := authLogin(t, s, a.Slug, a.OwnerEmail, servertest.Password)
	q2 := authRefresh(t, s, q1.RefreshToken)
	revoke(q1.RefreshToken)
	authWantUnauthorized(t, authRefreshGrant(t, s, q2.RefreshToken))
}

func TestRolesGuardAdminRoutes(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "roles")
	_, member := authUserToken(t, s, a, "member")
	_, admin := authUserToken(t, s, a, "admin")

	for _, req := range []servertest.Request{
		{Method: "POST", Path: "/v1/users", Body: map[string]string{"email": "x@roles.example.com", "password": authUserPassword, "role": "member"}},
		{Method: "GET", Path: "/v1/users"},
		{Method: "GET", Path: "/v1/users/" + a.OwnerID},
		{Method: "PATCH", Path: "/v1/users/" + a.OwnerID, Body: map[string]string{"role": "member"}},
		{Method: "DELETE", Path: "/v1/users/" + a.OwnerID},
		{Method: "GET", Path: "/v1/api-keys"},
		{Method: "POST", Path: "/v1/api-keys", Body: map[string]string{"name": "k", "role": "member"}},
		{Method: "PATCH", Path: "/v1/tenant", Body: map[string]string{"name": "renamed"}},
	} {
		req.Token = member.AccessToken
		res := s.Do(t, req)
		if res.Status != http.StatusForbidden || res.Problem(t).Code != "forbidden" {
			t.Errorf("%s %s as a member: %d %s, want 403 forbidden", req.Method, req.Path, res.Status, res.Body)
		}
	}
	// The same routes are open to an admin.
	authWant(t, authGet(t, s, admin.AccessToken, "/v1/users"), http.StatusOK, "")
	authWant(t, authGet(t, s, admin.AccessToken, "/v1/api-keys"), http.StatusOK, "")
	authWant(t, authGet(t, s, member.AccessToken, "/v1/projects"), http.StatusOK, "")
}

func TestUsersAndSignupConflicts(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "dupes")
	b := s.Signup(t, "dupes-other")

	_, email := authAddUser(t, s, a, "member")
	for _, e := range []string{email, strings.ToUpper(email), " " + email + " "} {
		res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/users", Token: a.Token,
			Body: map[string]string{"email": e, "password": authUserPassword, "role": "member"}})
		if strings.TrimSpace(e) != e && res.Status == http.StatusBadRequest {
			continue // an email with spaces may be refused as invalid instead
		}
		authWant(t, res, http.StatusConflict, "email_taken")
	}
	// An email is unique per tenant, not across tenants.
	s.Create(t, b.Token, "/v1/users", map[string]string{"email": email, "password": authUserPassword, "role": "member"})

	res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/signup", Body: map[string]string{
		"tenant_name": "Copycat", "tenant_slug": a.Slug, "email": "someone@copycat.example.com", "password": servertest.Password,
	}})
	authWant(t, res, http.StatusConflict, "slug_taken")
	// The failed signup left no user behind that could log in.
	if res := authPasswordGrant(t, s, a.Slug, "someone@copycat.example.com", servertest.Password); res.Status != http.StatusUnauthorized {
		t.Fatalf("a user of the refused signup logs in: %d %s", res.Status, res.Body)
	}
}

func TestOnlyOwnersGrantOwner(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "grant")
	memberID, _ := authAddUser(t, s, a, "member")
	_, admin := authUserToken(t, s, a, "admin")

	patch := func(token, id, role string) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/users/" + id, Token: token, Body: map[string]string{"role": role}})
	}
	authWant(t, patch(admin.AccessToken, memberID, "owner"), http.StatusForbidden, "forbidden")
	authWant(t, patch(admin.AccessToken, a.OwnerID, "member"), http.StatusForbidden, "forbidden")
	authWant(t, s.Do(t, servertest.Request{Method: "DELETE", Path: "/v1/users/" + a.OwnerID, Token: admin.AccessToken}), http.StatusForbidden, "forbidden")
	res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/users", Token: admin.AccessToken,
		Body: map[string]string{"email": "boss@grant.example.com", "password": authUserPassword, "role": "owner"}})
	authWant(t, res, http.StatusForbidden, "forbidden")

	// Nothing changed.
	res = authGet(t, s, a.Token, "/v1/users/"+memberID)
	authWant(t, res, http.StatusOK, "")
	var u struct{ Role string }
	res.Decode(t, &u)
	if u.Role != "member" {
		t.Fatalf("the member is now %q", u.Role)
	}

	// An admin may promote a member to admin; an owner may grant owner.
	authWant(t, patch(admin.AccessToken, memberID, "admin"), http.StatusOK, "")
	res = patch(a.Token, memberID, "owner")
	authWant(t, res, http.StatusOK, "")
	res.Decode(t, &u)
	if u.Role != "owner" {
		t.Fatalf("PATCH role=owner answered role %q", u.Role)
	}
}

func TestLastOwnerStays(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "lastowner")

	patch := func(token, id, role string) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/users/" + id, Token: token, Body: map[string]string{"role": role}})
	}
	del := func(token, id string) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "DELETE", Path: "/v1/users/" + id, Token: token})
	}
	authWant(t, patch(a.Token, a.OwnerID, "admin"), http.StatusConflict, "conflict")
	authWant(t, patch(a.Token, a.OwnerID, "member"), http.StatusConflict, "conflict")
	authWant(t, del(a.Token, a.OwnerID), http.StatusConflict, "conflict")

	// With a second owner, one may step down; then the other is the last one.
	secondID, secondEmail := authAddUser(t, s, a, "member")
	authWant(t, patch(a.Token, secondID, "owner"), http.StatusOK, "")
	second := authLogin(t, s, a.Slug, secondEmail, authUserPassword) // a token with the new role
	authWant(t, patch(second.AccessToken, a.OwnerID, "admin"), http.StatusOK, "")
	authWant(t, patch(second.AccessToken, secondID, "admin"), http.StatusConflict, "conflict")
	authWant(t, del(second.AccessToken, secondID), http.StatusConflict, "conflict")

	res := authGet(t, s, second.AccessToken, "/v1/users?limit=200")
	authWant(t, res, http.StatusOK, "")
	var list struct{ Data []struct{ ID, Role string } }
	res.Decode(t, &list)
	owners := 0
	for _, u := range list.Data {
		if u.Role == "owner" {
			owners++
		}
	}
	if owners != 1 {
		t.Fatalf("%d owners, want 1: %s", owners, res.Body)
	}
}

func TestDemotedOrDeletedUserLosesSessions(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "demote")

	t.Run("demoted", func(t *testing.T) {
		id, email := authAddUser(t, s, a, "admin")
		p := authLogin(t, s, a.Slug, email, authUserPassword)
		authWant(t, s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/users/" + id, Token: a.Token, Body: map[string]string{"role": "member"}}), http.StatusOK, "")
		authWantUnauthorized(t, authRefreshGrant(t, s, p.RefreshToken))
		// A new login carries the new role.
		p = authLogin(t, s, a.Slug, email, authUserPassword)
		if me := authMeOf(t, s, p.AccessToken); me.Role != "member" {
			t.Fatalf("after demotion the new token says %q", me.Role)
		}
		if r := authRefresh(t, s, p.RefreshToken); authMeOf(t, s, r.AccessToken).Role != "member" {
			t.Fatal("a refreshed token carries a role other than member")
		}
	})
	t.Run("deleted", func(t *testing.T) {
		id, email := authAddUser(t, s, a, "member")
		p := authLogin(t, s, a.Slug, email, authUserPassword)
		authWant(t, s.Do(t, servertest.Request{Method: "DELETE", Path: "/v1/users/" + id, Token: a.Token}), http.StatusNoContent, "")
		authWantUnauthorized(t, authRefreshGrant(t, s, p.RefreshToken))
		authWant(t, authPasswordGrant(t, s, a.Slug, email, authUserPassword), http.StatusUnauthorized, "invalid_credentials")
		authWant(t, authGet(t, s, a.Token, "/v1/users/"+id), http.StatusNotFound, "not_found")
	})
}

func TestPasswordChange(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "passwd")
	_, email := authAddUser(t, s, a, "member")
	p1 := authLogin(t, s, a.Slug, email, authUserPassword)
	p2 := authLogin(t, s, a.Slug, email, authUserPassword)

	change := func(token, current, next string) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "POST", Path: "/v1/me/password", Token: token,
			Body: map[string]string{"current_password": current, "new_password": next}})
	}
	const newPassword = "a brand new passphrase"
	authWant(t, change(p1.AccessToken, "not the password", newPassword), http.StatusUnauthorized, "invalid_credentials")
	authRefresh(t, s, p2.RefreshToken) // a wrong current password revoked nothing
	authLogin(t, s, a.Slug, email, authUserPassword)

	authWant(t, change(p1.AccessToken, authUserPassword, newPassword), http.StatusNoContent, "")
	authWantUnauthorized(t, authRefreshGrant(t, s, p1.RefreshToken))
	authWant(t, authPasswordGrant(t, s, a.Slug, email, authUserPassword), http.StatusUnauthorized, "invalid_credentials")
	authLogin(t, s, a.Slug, email, newPassword)

	// An API key has no password to change.
	key := authCreateKey(t, s, a.Token, "k", "member")
	authWant(t, change(*key.Key, "whatever it is", newPassword), http.StatusForbidden, "forbidden")
}

// authAdminTenants walks every page of the operator's tenant list.
func authAdminTenants(t testing.TB, s *servertest.Server, token string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	cursor := ""
	for range 1000 {
		path := "/v1/admin/tenants?limit=200"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		res := authGet(t, s, token, path)
		authWant(t, res, http.StatusOK, "")
		var page struct {
			Data       []map[string]any
			NextCursor *string `json:"next_cursor"`
		}
		res.Decode(t, &page)
		for _, tn := range page.Data {
			id, _ := tn["id"].(string)
			if _, dup := out[id]; dup {
				t.Fatalf("tenant %s listed twice", id)
			}
			out[id] = tn
		}
		if page.NextCursor == nil {
			return out
		}
		cursor = *page.NextCursor
	}
	t.Fatal("the tenant list does not end")
	return nil
}

func TestPlatformTokenScope(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "plat-a")
	b := s.Signup(t, "plat-b")
	op := s.PlatformToken(t)

	all := authAdminTenants(t, s, op)
	for _, tn := range []servertest.Tenant{a, b} {
		if got, ok := all[tn.ID]; !ok || got["slug"] != tn.Slug {
			t.Errorf("GET /v1/admin/tenants lacks tenant %s (%s)", tn.ID, tn.Slug)
		}
	}
	res := authGet(t, s, op, "/v1/admin/tenants/"+a.ID)
	authWant(t, res, http.StatusOK, "")

	for _, path := range []string{"/v1/projects", "/v1/me", "/v1/tenant", "/v1/events", "/v1/users"} {
		authWant(t, authGet(t, s, op, path), http.StatusForbidden, "forbidden")
	}
	for _, token := range []string{a.Token, *authCreateKey(t, s, a.Token, "k", "owner").Key} {
		authWant(t, authGet(t, s, token, "/v1/admin/tenants"), http.StatusForbidden, "forbidden")
		authWant(t, authGet(t, s, token, "/v1/admin/tenants/"+a.ID), http.StatusForbidden, "forbidden")
		res := s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/admin/tenants/" + a.ID, Token: token, Body: map[string]string{"plan": "enterprise"}})
		authWant(t, res, http.StatusForbidden, "forbidden")
	}
	authWantUnauthorized(t, authGet(t, s, "", "/v1/admin/tenants"))
}

// authPoll calls check until it reports done, failing after deadline.
func authPoll(t testing.TB, deadline time.Duration, what string, check func() (done bool, last string)) {
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

func TestSuspendedTenantIsRefusedOnEveryReplica(t *testing.T) {
	s := servertest.New(t)
	replica := servertest.New(t) // another replica on the same database
	a := s.Signup(t, "suspend")
	b := s.Signup(t, "suspend-bystander")
	op := s.PlatformToken(t)
	key := *authCreateKey(t, s, a.Token, "k", "member").Key

	// Both replicas have served the tenant, so each holds it in its cache.
	authMeOf(t, s, a.Token)
	authMeOf(t, replica, a.Token)

	setStatus := func(status string) {
		t.Helper()
		res := s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/admin/tenants/" + a.ID, Token: op, Body: map[string]string{"status": status}})
		authWant(t, res, http.StatusOK, "")
		var tn struct{ Status string }
		res.Decode(t, &tn)
		if tn.Status != status {
			t.Fatalf("PATCH status=%s answered %s", status, res.Body)
		}
	}
	setStatus("suspended")

	// At once on the replica that made the change, for tokens and keys alike.
	for _, token := range []string{a.Token, key} {
		for _, path := range []string{"/v1/me", "/v1/projects", "/v1/tenant"} {
			authWant(t, authGet(t, s, token, path), http.StatusForbidden, "tenant_suspended")
		}
	}
	authWant(t, authPasswordGrant(t, s, a.Slug, a.OwnerEmail, servertest.Password), http.StatusForbidden, "tenant_suspended")
	// A refresh token cannot outlast the suspension either.
	authWant(t, s.Do(t, servertest.Request{Method: "POST", Path: "/v1/auth/token", Body: map[string]string{
		"grant_type": "refresh_token", "refresh_token": a.RefreshToken}}), http.StatusForbidden, "tenant_suspended")
	authMeOf(t, s, b.Token) // other tenants are not affected

	// Soon on the other replica.
	authPoll(t, 5*time.Second, "the other replica refuses the suspended tenant", func() (bool, string) {
		res := authGet(t, replica, a.Token, "/v1/me")
		return res.Status == http.StatusForbidden && res.Problem(t).Code == "tenant_suspended", string(res.Body)
	})
	authWant(t, authGet(t, replica, key, "/v1/projects"), http.StatusForbidden, "tenant_suspended")
	authMeOf(t, replica, b.Token)

	// The operator still sees the tenant.
	res := authGet(t, s, op, "/v1/admin/tenants/"+a.ID)
	authWant(t, res, http.StatusOK, "")

	setStatus("active")
	authMeOf(t, s, a.Token)
	authMeOf(t, s, key)
	authLogin(t, s, a.Slug, a.OwnerEmail, servertest.Password)
	authPoll(t, 5*time.Second, "the other replica serves the reactivated tenant", func() (bool, string) {
		res := authGet(t, replica, a.Token, "/v1/me")
		return res.Status == http.StatusOK, string(res.Body)
	})
}

func TestAdminTenantUpdates(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "adminpatch")
	op := s.PlatformToken(t)

	type tenantView struct {
		Plan      string
		Status    string
		RateLimit *auth.RateLimit `json:"rate_limit"`
	}
	patch := func(body any) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/admin/tenants/" + a.ID, Token: op, Body: body})
	}
	get := func() tenantView {
		t.Helper()
		res := authGet(t, s, op, "/v1/admin/tenants/"+a.ID)
		authWant(t, res, http.StatusOK, "")
		var v tenantView
		res.Decode(t, &v)
		return v
	}

	res := patch(map[string]string{"plan": "no-such-plan"})
	authWant(t, res, http.StatusBadRequest, "validation_failed")
	if !res.Problem(t).Field("plan") {
		t.Fatalf("the error does not name plan: %s", res.Body)
	}
	if v := get(); v.Plan != "free" {
		t.Fatalf("plan %q after a refused change, want free", v.Plan)
	}
	authWant(t, patch(map[string]string{"plan": "pro"}), http.StatusOK, "")
	if v := get(); v.Plan != "pro" {
		t.Fatalf("plan %q, want pro", v.Plan)
	}
	res = authGet(t, s, a.Token, "/v1/tenant")
	authWant(t, res, http.StatusOK, "")
	var own tenantView
	res.Decode(t, &own)
	if own.Plan != "pro" {
		t.Fatalf("the tenant sees plan %q, want pro", own.Plan)
	}

	authWant(t, patch(map[string]any{"rate_limit": map[string]any{"requests_per_second": 5, "burst": 10}}), http.StatusOK, "")
	if v := get(); v.RateLimit == nil || v.RateLimit.RequestsPerSecond != 5 || v.RateLimit.Burst != 10 {
		t.Fatalf("rate_limit %+v, want 5/s burst 10", v.RateLimit)
	}
	// A change that does not mention rate_limit leaves it alone.
	authWant(t, patch(map[string]string{"status": "active"}), http.StatusOK, "")
	if v := get(); v.RateLimit == nil || v.RateLimit.Burst != 10 {
		t.Fatalf("rate_limit %+v after a change of status, want it kept", v.RateLimit)
	}
	authWant(t, patch(map[string]any{"rate_limit": map[string]any{"requests_per_second": 0, "burst": 10}}), http.StatusBadRequest, "validation_failed")
	authWant(t, patch(map[string]any{"rate_limit": nil}), http.StatusOK, "")
	if v := get(); v.RateLimit != nil {
		t.Fatalf("rate_limit %+v after rate_limit: null, want none", v.RateLimit)
	}

	authWant(t, patch(map[string]string{"status": "deleted"}), http.StatusBadRequest, "validation_failed")
	res = s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/admin/tenants/" + uuid.NewString(), Token: op, Body: map[string]string{"status": "active"}})
	authWant(t, res, http.StatusNotFound, "not_found")
}

func TestAdminPutPlan(t *testing.T) {
	s := servertest.New(t)
	op := s.PlatformToken(t)
	code := "test-" + uuid.NewString()[:8]
	body := func(name string) map[string]any {
		return map[string]any{"name": name, "currency": "eur", "base_fee": "12.50",
			"rate_limit": map[string]any{"requests_per_second": 7, "burst": 14}}
	}
	put := func(path string, b any) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "PUT", Path: path, Token: op, Body: b})
	}
	var plan struct {
		Code, Name, Currency string
		BaseFee              string `json:"base_fee"`
	}

	res := put("/v1/admin/plans/"+code, body("Test"))
	authWant(t, res, http.StatusCreated, "")
	res.Decode(t, &plan)
	if plan.Code != code || plan.Name != "Test" || plan.Currency != "eur" || plan.BaseFee != "12.5" {
		t.Fatalf("created plan %+v", plan)
	}
	b := body("Test, renamed")
	b["code"] = code
	res = put("/v1/admin/plans/"+code, b)
	authWant(t, res, http.StatusOK, "")
	res.Decode(t, &plan)
	if plan.Name != "Test, renamed" {
		t.Fatalf("replaced plan %+v", plan)
	}

	b["code"] = "another-code"
	b["name"] = "Hijack"
	authWant(t, put("/v1/admin/plans/"+code, b), http.StatusBadRequest, "validation_failed")

	// A tenant may move to the new plan.
	a := s.Signup(t, "newplan")
	authWant(t, s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/admin/tenants/" + a.ID, Token: op, Body: map[string]string{"plan": code}}), http.StatusOK, "")

	// Tenants may not write the catalog.
	authWant(t, s.Do(t, servertest.Request{Method: "PUT", Path: "/v1/admin/plans/" + code, Token: a.Token, Body: body("Mine")}), http.StatusForbidden, "forbidden")

	res = authGet(t, s, "", "/v1/plans")
	authWant(t, res, http.StatusOK, "")
	var list struct {
		Data []struct{ Code, Name string }
	}
	res.Decode(t, &list)
	names := map[string]string{}
	for _, p := range list.Data {
		names[p.Code] = p.Name
	}
	if names[code] != "Test, renamed" {
		t.Fatalf("GET /v1/plans shows plan %s as %q: %s", code, names[code], res.Body)
	}
}

func TestListPlans(t *testing.T) {
	s := servertest.New(t)
	res := authGet(t, s, "", "/v1/plans")
	authWant(t, res, http.StatusOK, "")
	var list struct {
		Data []struct {
			Code      string
			RateLimit auth.RateLimit `json:"rate_limit"`
		}
	}
	res.Decode(t, &list)
	seen := map[string]bool{}
	for i, p := range list.Data {
		seen[p.Code] = true
		if i > 0 && list.Data[i-1].Code >= p.Code {
			t.Errorf("plans not ordered by code: %q before %q", list.Data[i-1].Code, p.Code)
		}
		if p.RateLimit.RequestsPerSecond <= 0 || p.RateLimit.Burst < 1 {
			t.Errorf("plan %s has no rate limit: %+v", p.Code, p.RateLimit)
		}
	}
	for _, code := range []string{"free", "pro", "enterprise"} {
		if !seen[code] {
			t.Errorf("GET /v1/plans lacks %s: %s", code, res.Body)
		}
	}
}
