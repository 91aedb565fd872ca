// Package auth holds the service's credentials: EdDSA-signed access tokens,
// argon2id password hashes, API keys and refresh tokens.
package auth

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalidToken is wrapped by every error Verify returns, so callers can map
// any verification failure to 401 without caring which check failed.
var ErrInvalidToken = errors.New("invalid token")

// errLifetime is why a token with no iat, or one living longer than the maximum,
// is neither signed nor accepted.
var errLifetime = errors.New("token lifetime not within the maximum")

// clockLeeway absorbs small clock differences between the signer and the
// verifier when checking exp, nbf and iat.
const clockLeeway = 30 * time.Second

// Claims are the claims of an access token.
type Claims struct {
	jwt.RegisteredClaims
	TenantID string `json:"tid,omitempty"`
	Role     string `json:"role"`
}

// Keys signs tokens with the current key and verifies tokens signed with the
// current key or any previous one, so the signing key can be rotated without
// logging everybody out: the old public key stays in previous until the last
// token it signed has expired. It signs and accepts only tokens that live at
// most maxTTL (exp - iat), so no token, however it was minted, outlives that.
type Keys struct {
	private ed25519.PrivateKey
	kid     string
	public  map[string]ed25519.PublicKey // by kid, current key included
	jwks    []byte
	maxTTL  time.Duration
}

// NewKeys builds Keys whose signing key is derived from the 32-byte seed,
// which also accept tokens signed by the previous public keys, and which sign
// and accept tokens whose exp - iat is at most maxTTL.
func NewKeys(seed []byte, previous []ed25519.PublicKey, maxTTL time.Duration) (*Keys, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("auth: signing key seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	if maxTTL <= 0 {
		return nil, fmt.Errorf("auth: maximum token lifetime %s, want more than 0", maxTTL)
	}
	private := ed25519.NewKeyFromSeed(seed)
	current := private.Public().(ed25519.PublicKey)
	k := &Keys{
		private: private,
		kid:     thumbprint(current),
		public:  make(map[string]ed25519.PublicKey, 1+len(previous)),
		maxTTL:  maxTTL,
	}
	k.public[k.kid] = current

	set := jwkSet{Keys: []jwk{newJWK(current, k.kid)}}
	for i, pub := range previous {
		if len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("auth: previous key %d is %d bytes, want %d", i+1, len(pub), ed25519.PublicKeySize)
		}
		kid := thumbprint(pub)
		if _, dup := k.public[kid]; dup {
			continue // publishing one key twice would only confuse JWKS clients
		}
		k.public[kid] = pub
		set.Keys = append(set.Keys, newJWK(pub, kid))
	}

	var err error
	if k.jwks, err = json.Marshal(set); err != nil {
		return nil, fmt.Errorf("auth: encoding JWKS: %w", err)
	}
	return k, nil
}

// Sign returns c as a compact JWS signed with the current key; the kid header
// tells verifiers, including ourselves after a rotation, which key to use. It
// refuses claims that Verify would refuse for their lifetime.
func (k *Keys) Sign(c Claims) (string, error) {
	if err := k.checkLifetime(&c); err != nil {
		return "", fmt.Errorf("auth: signing token: %w", err)
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c) // sets typ JWT and alg EdDSA
	t.Header["kid"] = k.kid
	s, err := t.SignedString(k.private)
	if err != nil {
		return "", fmt.Errorf("auth: signing token: %w", err)
	}
	return s, nil
}

// Verify checks the token's signature, issuer, audience and lifetime as of now
// and returns its claims. A token must carry iat, exp no more than the maximum
// lifetime after it, and a kid naming a known key. Every error wraps
// ErrInvalidToken.
func (k *Keys) Verify(token, issuer, audience string, now time.Time) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, k.keyFor,
		// Pinning the algorithm stops alg "none" and the HS256-with-public-key
		// confusion before the key is even looked up.
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(clockLeeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		// One token, one spelling: reject base64 with stray trailing bits.
		jwt.WithStrictDecoding(),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if err := k.checkLifetime(&c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return &c, nil
}

// checkLifetime refuses a token that lives longer than maxTTL, or that has no
// iat: exp alone does not say how long a token lives, so without iat a token
// valid for years would pass.
func (k *Keys) checkLifetime(c *Claims) error {
	switch {
	case c.IssuedAt == nil:
		return fmt.Errorf("%w: no iat, so no bound", errLifetime)
	case c.ExpiresAt == nil:
		return fmt.Errorf("%w: no exp", errLifetime)
	case c.ExpiresAt.Sub(c.IssuedAt.Time) > k.maxTTL:
		return fmt.Errorf("%w: exp - iat is %s, the maximum %s", errLifetime, c.ExpiresAt.Sub(c.IssuedAt.Time), k.maxTTL)
	}
	return nil
}

// keyFor picks the verification key named by the token's kid header. Without
// a kid there is no way to choose among rotated keys, so it is required.
func (k *Keys) keyFor(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errors.New("missing kid header")
	}
	pub, ok := k.public[kid]
	if !ok {
		return nil, fmt.Errorf("unknown kid %q", kid)
	}
	return pub, nil
}

// JWKS returns the public keys as a JSON Web Key Set, current key first, for
// /.well-known/jwks.json. It is encoded once in NewKeys; each call returns a
// copy so a caller cannot corrupt what later callers get.
func (k *Keys) JWKS() []byte {
	return slices.Clone(k.jwks)
}

type jwkSet struct {
	Keys []jwk `json:"keys"`
}

type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

func newJWK(pub ed25519.PublicKey, kid string) jwk {
	return jwk{
		Kty: "OKP",
		Crv: "Ed25519",
		X:   base64.RawURLEncoding.EncodeToString(pub),
		Kid: kid,
		Alg: jwt.SigningMethodEdDSA.Alg(),
		Use: "sig",
	}
}

// thumbprint is the RFC 7638 JWK thumbprint of an Ed25519 public key (RFC 8037
// §2). RFC 7638 fixes the exact bytes hashed: the required members only, in
// lexicographic order, without whitespace; so the JSON is spelled out rather
// than left to an encoder.
func thumbprint(pub ed25519.PublicKey) string {
	canonical := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ParsePublicKeys parses a comma-separated list of standard-base64 Ed25519
// public keys, as kept in configuration for the keys retired by a rotation.
// An empty string means no keys.
func ParsePublicKeys(csv string) ([]ed25519.PublicKey, error) {
	if strings.TrimSpace(csv) == "" {
		return nil, nil
	}
	var keys []ed25519.PublicKey
	for i, entry := range strings.Split(csv, ",") {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(entry))
		if err != nil {
			return nil, fmt.Errorf("auth: public key %d: %w", i+1, err)
		}
		if len(b) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("auth: public key %d is %d bytes, want %d", i+1, len(b), ed25519.PublicKeySize)
		}
		keys = append(keys, ed25519.PublicKey(b))
	}
	return keys, nil
}

// PublicKeyBase64 returns the standard-base64 public key for a signing seed:
// the form ParsePublicKeys reads, so an operator rotating keys can move the old
// seed's public key into the previous-keys setting. Like
// ed25519.NewKeyFromSeed, it panics if len(seed) != ed25519.SeedSize.
func PublicKeyBase64(seed []byte) string {
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	return base64.StdEncoding.EncodeToString(pub)
}
