package auth_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// jwk is a key of the service's JWKS, the members these tests read.
type jwk struct {
	Kid string `json:"kid"`
	X   string `json:"x"`
}

// jwks GETs the service's JWKS.
func jwks(t testing.TB, s *servertest.Server) []jwk {
	t.Helper()
	res := s.Get(t, "", "/.well-known/jwks.json")
	res.Want(t, http.StatusOK, "")
	var set struct{ Keys []jwk }
	res.Decode(t, &set)
	return set.Keys
}

// thumbprint is the RFC 7638 thumbprint of an Ed25519 public key, computed here
// independently of the service.
func thumbprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// sign signs claims by m with key, under kid ("" for none): the forger's tool.
func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
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

// tamper rewrites claims of a signed token and keeps its signature.
func tamper(t testing.TB, token string, set map[string]any) string {
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

// randomSeed is a fresh Ed25519 seed: a key the service has never seen.
func randomSeed(t testing.TB) []byte {
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
	memberID, member := s.LoginNewUser(t, a, "member")

	priv := ed25519.NewKeyFromSeed(s.Config.JWTSigningKey)
	pub := priv.Public().(ed25519.PublicKey)
	keys := jwks(t, s)
	if len(keys) != 1 || keys[0].Kid != thumbprint(pub) {
		t.Fatalf("JWKS %+v, want the one current key with kid %s", keys, thumbprint(pub))
	}
	kid := keys[0].Kid
	other := ed25519.NewKeyFromSeed(randomSeed(t))
	otherKid := thumbprint(other.Public().(ed25519.PublicKey))

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
	if me := s.Me(t, sign(t, jwt.SigningMethodEdDSA, priv, kid, claims(nil))); me.ID != memberID || me.Role != "member" {
		t.Fatalf("control token: /v1/me = %+v", me)
	}
	s.Me(t, member.AccessToken)

	cases := []struct {
		name  string
		token string
	}{
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, claims(nil))},
		{"alg none claiming owner", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid,
			claims(func(c jwt.MapClaims) { c["role"] = "owner" }))},
		{"HS256 keyed with the public key bytes", sign(t, jwt.SigningMethodHS256, []byte(pub), kid, claims(nil))},
		{"HS256 keyed with the JWK x", sign(t, jwt.SigningMethodHS256, []byte(keys[0].X), kid, claims(nil))},
		{"HS256 keyed with the base64 public key", sign(t, jwt.SigningMethodHS256,
			[]byte(auth.PublicKeyBase64(s.Config.JWTSigningKey)), kid, claims(nil))},
		{"wrong aud", sign(t, jwt.SigningMethodEdDSA, priv, kid, claims(func(c jwt.MapClaims) { c["aud"] = "another-api" }))},
		{"no aud", sign(t, jwt.SigningMethodEdDSA, priv, kid, claims(func(c jwt.MapClaims) { delete(c, "aud") }))},
		{"wrong iss", sign(t, jwt.SigningMethodEdDSA, priv, kid, claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }))},
		{"no iss", sign(t, jwt.SigningMethodEdDSA, priv, kid, claims(func(c jwt.MapClaims) { delete(c, "iss") }))},
		{"no exp", sign(t, jwt.SigningMethodEdDSA, priv, kid, claims(func(c jwt.MapClaims) { delete(c, "exp") }))},
		{"expired", sign(t, jwt.SigningMethodEdDSA, priv, kid, claims(func(c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		}))},
		{"unknown kid", sign(t, jwt.SigningMethodEdDSA, priv, "no-such-key", claims(nil))},
		{"no kid", sign(t, jwt.SigningMethodEdDSA, priv, "", claims(nil))},
		{"another key with its own kid", sign(t, jwt.SigningMethodEdDSA, other, otherKid, claims(nil))},
		{"another key under the service's kid", sign(t, jwt.SigningMethodEdDSA, other, kid, claims(nil))},
		{"member token tampered to owner", tamper(t, member.AccessToken, map[string]any{"role": "owner"})},
		{"member token tampered to another tenant", tamper(t, member.AccessToken, map[string]any{"tid": b.ID, "sub": b.OwnerID})},
		{"member token tampered to platform_admin", tamper(t, member.AccessToken, map[string]any{"role": "platform_admin", "tid": ""})},
		{"signature cut off", strings.Join(strings.Split(member.AccessToken, ".")[:2], ".") + "."},
		{"garbage", "not-a-token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.Get(t, tc.token, "/v1/me").WantUnauthorized(t)
		})
	}
	t.Run("no credential", func(t *testing.T) {
		s.Get(t, "", "/v1/me").WantUnauthorized(t)
	})
}

// TestJWTKeyRotation: after a rotation the old key's tokens stay valid while its public key
// is listed among the previous keys, and not once it is dropped.
func TestJWTKeyRotation(t *testing.T) {
	oldSeed, newSeed := randomSeed(t), randomSeed(t)
	oldPub := ed25519.NewKeyFromSeed(oldSeed).Public().(ed25519.PublicKey)
	newPub := ed25519.NewKeyFromSeed(newSeed).Public().(ed25519.PublicKey)

	before := servertest.New(t, func(c *config.Config) { c.JWTSigningKey = oldSeed })
	a := before.Signup(t, "rotate") // its token is signed with the old key

	during := servertest.New(t, func(c *config.Config) {
		c.JWTSigningKey = newSeed
		c.JWTPreviousKeys = auth.PublicKeyBase64(oldSeed)
	})
	after := servertest.New(t, func(c *config.Config) { c.JWTSigningKey = newSeed })

	if me := during.Me(t, a.Token); me.ID != a.OwnerID {
		t.Fatalf("old token on the rotated server: /v1/me = %+v", me)
	}
	keys := jwks(t, during)
	if len(keys) != 2 || keys[0].Kid != thumbprint(newPub) || keys[1].Kid != thumbprint(oldPub) {
		t.Fatalf("JWKS during the rotation = %+v, want the new kid %s then the old kid %s", keys, thumbprint(newPub), thumbprint(oldPub))
	}
	if keys[1].X != base64.RawURLEncoding.EncodeToString(oldPub) {
		t.Fatalf("JWKS lists the old key as x=%s, want %s", keys[1].X, base64.RawURLEncoding.EncodeToString(oldPub))
	}

	// Tokens the rotated server issues are signed with the new key.
	fresh := during.Login(t, a.Slug, a.OwnerEmail, servertest.Password)
	after.Me(t, fresh.AccessToken)
	before.Get(t, fresh.AccessToken, "/v1/me").WantUnauthorized(t)

	// Once the old key is dropped, its tokens are refused.
	after.Get(t, a.Token, "/v1/me").WantUnauthorized(t)
	if keys := jwks(t, after); len(keys) != 1 || keys[0].Kid != thumbprint(newPub) {
		t.Fatalf("JWKS after the rotation = %+v, want only %s", keys, thumbprint(newPub))
	}
}

func TestPasswordGrant(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "login")

	pair := s.Login(t, a.Slug, a.OwnerEmail, servertest.Password)
	if pair.ExpiresIn < 1 || pair.ExpiresIn > 15*60 {
		t.Fatalf("expires_in %d, want 1..900", pair.ExpiresIn)
	}
	if me := s.Me(t, pair.AccessToken); me.ID != a.OwnerID || me.Kind != "user" || me.Role != "owner" {
		t.Fatalf("/v1/me = %+v", me)
	}
	// The email is matched whatever its case.
	s.Login(t, a.Slug, strings.ToUpper(a.OwnerEmail), servertest.Password)

	var first servertest.Problem
	for i, c := range []struct{ name, slug, email, password string }{
		{"wrong password", a.Slug, a.OwnerEmail, servertest.Password + "!"},
		{"unknown email", a.Slug, "nobody@" + a.Slug + ".example.com", servertest.Password},
		{"unknown tenant", "no-such-tenant-" + uuid.NewString()[:8], a.OwnerEmail, servertest.Password},
	} {
		res := s.PasswordGrant(t, c.slug, c.email, c.password)
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

	p1 := s.Login(t, a.Slug, a.OwnerEmail, servertest.Password)
	other := s.Login(t, a.Slug, a.OwnerEmail, servertest.Password) // another session (family)

	p2 := s.Refresh(t, p1.RefreshToken)
	if p2.RefreshToken == p1.RefreshToken {
		t.Fatal("the refresh token did not rotate")
	}
	s.Me(t, p2.AccessToken)
	p3 := s.Refresh(t, p2.RefreshToken) // the new token works, once

	// p2 is spent: presenting it again is refused and revokes the whole family...
	s.RefreshGrant(t, p2.RefreshToken).WantUnauthorized(t)
	// ...so the newest token of the family, never used, is refused too.
	s.RefreshGrant(t, p3.RefreshToken).WantUnauthorized(t)
	s.RefreshGrant(t, p1.RefreshToken).WantUnauthorized(t)

	// Another session of the same user is not affected.
	s.Refresh(t, other.RefreshToken)

	// Malformed refresh tokens are refused the same way.
	s.RefreshGrant(t, "rt_not-a-token").WantUnauthorized(t)
	s.RefreshGrant(t, p3.RefreshToken[:len(p3.RefreshToken)-2]+"AA").WantUnauthorized(t)
}

func TestRevokeEndsTheSession(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "logout")

	p1 := s.Login(t, a.Slug, a.OwnerEmail, servertest.Password)
	p2 := s.Refresh(t, p1.RefreshToken)
	other := s.Login(t, a.Slug, a.OwnerEmail, servertest.Password)

	revoke := func(token string) {
		t.Helper()
		s.Do(t, servertest.Request{Method: "POST", Path: "/v1/auth/revoke", Body: map[string]string{"refresh_token": token}}).Want(t, http.StatusNoContent, "")
	}
	revoke(p2.RefreshToken)
	s.RefreshGrant(t, p2.RefreshToken).WantUnauthorized(t)
	revoke(p2.RefreshToken) // twice is fine
	revoke("rt_unknown")    // unknown is fine

	// Revoking one token revokes its family, not the user's other sessions.
	s.Refresh(t, other.RefreshToken)
	// Revoking an already spent token of a family revokes the family too.
	q1 := s.Login(t, a.Slug, a.OwnerEmail, servertest.Password)
	q2 := s.Refresh(t, q1.RefreshToken)
	revoke(q1.RefreshToken)
	s.RefreshGrant(t, q2.RefreshToken).WantUnauthorized(t)
}

// adminTenants walks every page of the operator's tenant list.
func adminTenants(t testing.TB, s *servertest.Server, token string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	cursor := ""
	for range 1000 {
		path := "/v1/admin/tenants?limit=200"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		res := s.Get(t, token, path)
		res.Want(t, http.StatusOK, "")
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

	all := adminTenants(t, s, op)
	for _, tn := range []servertest.Tenant{a, b} {
		if got, ok := all[tn.ID]; !ok || got["slug"] != tn.Slug {
			t.Errorf("GET /v1/admin/tenants lacks tenant %s (%s)", tn.ID, tn.Slug)
		}
	}
	res := s.Get(t, op, "/v1/admin/tenants/"+a.ID)
	res.Want(t, http.StatusOK, "")

	for _, path := range []string{"/v1/projects", "/v1/me", "/v1/tenant", "/v1/events", "/v1/users"} {
		s.Get(t, op, path).Want(t, http.StatusForbidden, "forbidden")
	}
	for _, token := range []string{a.Token, *s.CreateAPIKey(t, a.Token, "k", "owner").Key} {
		s.Get(t, token, "/v1/admin/tenants").Want(t, http.StatusForbidden, "forbidden")
		s.Get(t, token, "/v1/admin/tenants/"+a.ID).Want(t, http.StatusForbidden, "forbidden")
		res := s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/admin/tenants/" + a.ID, Token: token, Body: map[string]string{"plan": "enterprise"}})
		res.Want(t, http.StatusForbidden, "forbidden")
	}
	s.Get(t, "", "/v1/admin/tenants").WantUnauthorized(t)
}

// TestTokenLifetimeIsCapped: a token signed with the service's own key is refused, though
// unexpired, when exp - iat exceeds JWT_MAX_TOKEN_TTL (24h by default) or when it has no iat
// to measure its lifetime by: a leaked long-lived token stays usable for no more than the cap.
func TestTokenLifetimeIsCapped(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "lifetime")
	priv := ed25519.NewKeyFromSeed(s.Config.JWTSigningKey)
	kid := thumbprint(priv.Public().(ed25519.PublicKey))

	now := time.Now()
	hourAgo := now.Add(-time.Hour)
	// token is an owner token of ten, issued at iat (nil: no iat) and expiring at exp.
	token := func(ten servertest.Tenant, iat *time.Time, exp time.Time) string {
		c := jwt.MapClaims{
			"iss": s.Config.JWTIssuer, "aud": s.Config.JWTAudience,
			"sub": ten.OwnerID, "tid": ten.ID, "role": "owner", "exp": exp.Unix(),
		}
		if iat != nil {
			c["iat"] = iat.Unix()
		}
		return sign(t, jwt.SigningMethodEdDSA, priv, kid, c)
	}

	if me := s.Me(t, token(a, &hourAgo, hourAgo.Add(23*time.Hour))); me.ID != a.OwnerID {
		t.Fatalf("a 23h token: /v1/me = %+v", me)
	}
	s.Get(t, token(a, &hourAgo, hourAgo.Add(25*time.Hour)), "/v1/me").WantUnauthorized(t)
	s.Get(t, token(a, &now, now.Add(365*24*time.Hour)), "/v1/me").WantUnauthorized(t)
	s.Get(t, token(a, nil, now.Add(time.Hour)), "/v1/me").WantUnauthorized(t)

	// The cap is the configured one, and the service's own tokens live within it.
	short := servertest.New(t, func(c *config.Config) { c.JWTMaxTokenTTL = 2 * time.Hour })
	b := short.Signup(t, "lifetime-short")
	short.Me(t, short.Login(t, b.Slug, b.OwnerEmail, servertest.Password).AccessToken)
	short.Me(t, token(b, &hourAgo, hourAgo.Add(2*time.Hour)))
	short.Get(t, token(b, &hourAgo, hourAgo.Add(3*time.Hour)), "/v1/me").WantUnauthorized(t)
}
