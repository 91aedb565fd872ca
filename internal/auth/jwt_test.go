package auth

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	testIssuer   = "https://auth.example.test"
	testAudience = "api"
)

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// testMaxTTL is the longest token lifetime the test keys sign and accept.
const testMaxTTL = 24 * time.Hour

// testSeed derives a deterministic 32-byte seed from a label.
func testSeed(label string) []byte {
	s := sha256.Sum256([]byte(label))
	return s[:]
}

func testPublicKey(seed []byte) ed25519.PublicKey {
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
}

func mustKeys(t *testing.T, seed []byte, previous ...ed25519.PublicKey) *Keys {
	t.Helper()
	k, err := NewKeys(seed, previous, testMaxTTL)
	if err != nil {
		t.Fatalf("NewKeys: %v", err)
	}
	return k
}

func validClaims() Claims {
	return Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    testIssuer,
			Subject:   "user-1",
			Audience:  jwt.ClaimStrings{testAudience},
			IssuedAt:  jwt.NewNumericDate(testNow.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(testNow.Add(14 * time.Minute)),
		},
		TenantID: "tenant-1",
		Role:     "member",
	}
}

// signWith signs claims with an arbitrary method, key and header, bypassing
// Keys.Sign, to build the hostile tokens Verify must reject.
func signWith(t *testing.T, m jwt.SigningMethod, key any, kid string, c Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("signing %s token: %v", m.Alg(), err)
	}
	return s
}

func TestSignVerifyRoundTrip(t *testing.T) {
	k := mustKeys(t, testSeed("current"))
	want := validClaims()
	tok, err := k.Sign(want)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}

	header := decodeSegment(t, tok, 0)
	for name, v := range map[string]string{"alg": "EdDSA", "typ": "JWT", "kid": k.kid} {
		if header[name] != v {
			t.Errorf("header %s = %v, want %q", name, header[name], v)
		}
	}

	got, err := k.Verify(tok, testIssuer, testAudience, testNow)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.Subject != want.Subject || got.TenantID != want.TenantID || got.Role != want.Role {
		t.Errorf("claims = %+v, want %+v", got, want)
	}
}

func TestVerifyRejects(t *testing.T) {
	seed := testSeed("current")
	k := mustKeys(t, seed)
	priv := ed25519.NewKeyFromSeed(seed)

	with := func(edit func(*Claims)) Claims {
		c := validClaims()
		edit(&c)
		return c
	}
	good, err := k.Sign(validClaims())
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}

	// Each token must fail with ErrInvalidToken, and for the reason given, so a
	// case cannot pass by tripping over an unrelated check.
	tests := []struct {
		name  string
		token string
		why   error
	}{
		{"alg none", signWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, k.kid, validClaims()), jwt.ErrTokenSignatureInvalid},
		// The classic algorithm confusion: a verifier that trusts the header
		// would check this HMAC with the public key, which everybody has.
		{"HS256 keyed with the public key", signWith(t, jwt.SigningMethodHS256, []byte(testPublicKey(seed)), k.kid, validClaims()), jwt.ErrTokenSignatureInvalid},
		{"wrong audience", signWith(t, jwt.SigningMethodEdDSA, priv, k.kid, with(func(c *Claims) { c.Audience = jwt.ClaimStrings{"other"} })), jwt.ErrTokenInvalidAudience},
		{"no audience", signWith(t, jwt.SigningMethodEdDSA, priv, k.kid, with(func(c *Claims) { c.Audience = nil })), jwt.ErrTokenRequiredClaimMissing},
		{"wrong issuer", signWith(t, jwt.SigningMethodEdDSA, priv, k.kid, with(func(c *Claims) { c.Issuer = "https://evil.test" })), jwt.ErrTokenInvalidIssuer},
		{"no exp", signWith(t, jwt.SigningMethodEdDSA, priv, k.kid, with(func(c *Claims) { c.ExpiresAt = nil })), jwt.ErrTokenRequiredClaimMissing},
		{"expired", signWith(t, jwt.SigningMethodEdDSA, priv, k.kid, with(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(testNow.Add(-time.Minute)) })), jwt.ErrTokenExpired},
		{"issued in the future", signWith(t, jwt.SigningMethodEdDSA, priv, k.kid, with(func(c *Claims) { c.IssuedAt = jwt.NewNumericDate(testNow.Add(time.Minute)) })), jwt.ErrTokenUsedBeforeIssued},
		{"no iat", signWith(t, jwt.SigningMethodEdDSA, priv, k.kid, with(func(c *Claims) { c.IssuedAt = nil })), errLifetime},
		{"living longer than the maximum", signWith(t, jwt.SigningMethodEdDSA, priv, k.kid, with(func(c *Claims) {
			c.ExpiresAt = jwt.NewNumericDate(c.IssuedAt.Add(testMaxTTL + time.Second))
		})), errLifetime},
		{"not yet valid", signWith(t, jwt.SigningMethodEdDSA, priv, k.kid, with(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(testNow.Add(time.Minute)) })), jwt.ErrTokenNotValidYet},
		{"unknown kid", signWith(t, jwt.SigningMethodEdDSA, priv, "no-such-key", validClaims()), jwt.ErrTokenUnverifiable},
		{"missing kid", signWith(t, jwt.SigningMethodEdDSA, priv, "", validClaims()), jwt.ErrTokenUnverifiable},
		{"unrelated key claiming our kid", signWith(t, jwt.SigningMethodEdDSA, ed25519.NewKeyFromSeed(testSeed("attacker")), k.kid, validClaims()), jwt.ErrTokenSignatureInvalid},
		{"tampered payload", tamper(t, good, `"role":"member"`, `"role":"owner"`), jwt.ErrTokenSignatureInvalid},
		{"truncated signature", good[:len(good)-4], jwt.ErrTokenMalformed},
		{"garbage", "not.a.jwt", jwt.ErrTokenMalformed},
		{"empty", "", jwt.ErrTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := k.Verify(tt.token, testIssuer, testAudience, testNow)
			if !errors.Is(err, ErrInvalidToken) || !errors.Is(err, tt.why) {
				t.Fatalf("Verify error = %v, want ErrInvalidToken and %v", err, tt.why)
			}
			if c != nil {
				t.Errorf("Verify returned claims %+v with an error", c)
			}
		})
	}
}

// Keys sign no token that they would refuse for its lifetime, and accept one that lives
// exactly the maximum.
func TestSignBoundsTheLifetime(t *testing.T) {
	k := mustKeys(t, testSeed("current"))
	c := validClaims()
	c.ExpiresAt = jwt.NewNumericDate(c.IssuedAt.Add(testMaxTTL))
	tok, err := k.Sign(c)
	if err != nil {
		t.Fatalf("Sign a token of the maximum lifetime: %v", err)
	}
	if _, err := k.Verify(tok, testIssuer, testAudience, testNow); err != nil {
		t.Fatalf("Verify a token of the maximum lifetime: %v", err)
	}
	for name, edit := range map[string]func(*Claims){
		"longer than the maximum": func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(c.IssuedAt.Add(testMaxTTL + time.Second)) },
		"no iat":                  func(c *Claims) { c.IssuedAt = nil },
		"no exp":                  func(c *Claims) { c.ExpiresAt = nil },
	} {
		c := validClaims()
		edit(&c)
		if tok, err := k.Sign(c); !errors.Is(err, errLifetime) {
			t.Errorf("Sign a token %s = %q, %v; want errLifetime", name, tok, err)
		}
	}
}

func TestVerifyLeeway(t *testing.T) {
	k := mustKeys(t, testSeed("current"))
	c := validClaims()
	c.ExpiresAt = jwt.NewNumericDate(testNow.Add(-clockLeeway / 2))
	tok, err := k.Sign(c)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if _, err := k.Verify(tok, testIssuer, testAudience, testNow); err != nil {
		t.Errorf("token expired within the leeway: Verify = %v, want nil", err)
	}
}

func TestVerifyAfterRotation(t *testing.T) {
	oldSeed, newSeed := testSeed("old"), testSeed("new")
	tok, err := mustKeys(t, oldSeed).Sign(validClaims())
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}

	rotated := mustKeys(t, newSeed, testPublicKey(oldSeed))
	if _, err := rotated.Verify(tok, testIssuer, testAudience, testNow); err != nil {
		t.Errorf("token from the previous key: Verify = %v, want nil", err)
	}

	forgotten := mustKeys(t, newSeed)
	if _, err := forgotten.Verify(tok, testIssuer, testAudience, testNow); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("token from a dropped key: Verify = %v, want ErrInvalidToken", err)
	}
}

func TestKIDIsRFC7638Thumbprint(t *testing.T) {
	t.Run("computed by hand", func(t *testing.T) {
		seed := testSeed("current")
		x := base64.RawURLEncoding.EncodeToString(testPublicKey(seed))
		sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`))
		want := base64.RawURLEncoding.EncodeToString(sum[:])
		if got := mustKeys(t, seed).kid; got != want {
			t.Errorf("kid = %q, want %q", got, want)
		}
	})
	t.Run("RFC 8037 appendix A", func(t *testing.T) {
		// A.1 gives the key (d is the seed), A.3 its thumbprint.
		seed, err := base64.RawURLEncoding.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
		if err != nil {
			t.Fatal(err)
		}
		const want = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
		if got := mustKeys(t, seed).kid; got != want {
			t.Errorf("kid = %q, want %q", got, want)
		}
	})
}

func TestJWKS(t *testing.T) {
	cur, prev := testSeed("new"), testSeed("old")
	k := mustKeys(t, cur, testPublicKey(prev), testPublicKey(cur)) // current repeated: listed once

	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(k.JWKS(), &set); err != nil {
		t.Fatalf("JWKS is not JSON: %v", err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("JWKS has %d keys, want 2: %s", len(set.Keys), k.JWKS())
	}
	for i, seed := range [][]byte{cur, prev} {
		pub := testPublicKey(seed)
		want := map[string]string{
			"kty": "OKP",
			"crv": "Ed25519",
			"x":   base64.RawURLEncoding.EncodeToString(pub),
			"kid": thumbprint(pub),
			"alg": "EdDSA",
			"use": "sig",
		}
		got := set.Keys[i]
		if len(got) != len(want) {
			t.Errorf("key %d = %v, want %v", i, got, want)
		}
		for name, v := range want {
			if got[name] != v {
				t.Errorf("key %d: %s = %q, want %q", i, name, got[name], v)
			}
		}
	}

	k.JWKS()[0] = 'X'
	if !json.Valid(k.JWKS()) {
		t.Error("modifying a returned JWKS changed later ones")
	}
}

func TestNewKeysRejectsBadKeys(t *testing.T) {
	if _, err := NewKeys(make([]byte, 31), nil, testMaxTTL); err == nil {
		t.Error("NewKeys accepted a 31-byte seed")
	}
	if _, err := NewKeys(testSeed("s"), []ed25519.PublicKey{make([]byte, 31)}, testMaxTTL); err == nil {
		t.Error("NewKeys accepted a 31-byte previous key")
	}
	if _, err := NewKeys(testSeed("s"), nil, 0); err == nil {
		t.Error("NewKeys accepted a maximum lifetime of 0")
	}
}

func TestParsePublicKeys(t *testing.T) {
	a, b := PublicKeyBase64(testSeed("a")), PublicKeyBase64(testSeed("b"))

	keys, err := ParsePublicKeys(a + ", " + b)
	if err != nil {
		t.Fatalf("ParsePublicKeys: %v", err)
	}
	if len(keys) != 2 || !keys[0].Equal(testPublicKey(testSeed("a"))) || !keys[1].Equal(testPublicKey(testSeed("b"))) {
		t.Errorf("ParsePublicKeys = %v, want the keys of seeds a and b", keys)
	}

	if keys, err := ParsePublicKeys(""); keys != nil || err != nil {
		t.Errorf(`ParsePublicKeys("") = %v, %v; want nil, nil`, keys, err)
	}

	short := base64.StdEncoding.EncodeToString(make([]byte, 31))
	for _, csv := range []string{a + ",!!!", a + "," + short, a + ","} {
		_, err := ParsePublicKeys(csv)
		if err == nil || !strings.Contains(err.Error(), "key 2") {
			t.Errorf("ParsePublicKeys(%q) error = %v, want one naming key 2", csv, err)
		}
	}
}

// decodeSegment returns the JSON object in segment i of a compact JWS.
func decodeSegment(t *testing.T, token string, i int) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[i])
	if err != nil {
		t.Fatalf("segment %d: %v", i, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("segment %d: %v", i, err)
	}
	return m
}

// tamper replaces from with to in the token's payload and keeps the original
// header and signature.
func tamper(t *testing.T, token, from, to string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(payload), from, to, 1)
	if edited == string(payload) {
		t.Fatalf("payload %s does not contain %s", payload, from)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(edited))
	return strings.Join(parts, ".")
}
