package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// Opaque credentials carry their own id, so the server finds the stored hash
// with one indexed lookup and then compares secrets; the database holds only
// hashes, never a usable credential.

const (
	secretLen = 32 // bytes of randomness in every opaque credential

	apiKeyLivePrefix = "sk_live_"
	apiKeyTestPrefix = "sk_test_"
	apiKeyIDHexLen   = 2 * len(uuid.UUID{})
	apiKeyBodyLen    = apiKeyIDHexLen + 1 + 2*secretLen // <id>_<secret>

	refreshPrefix = "rt_"
	refreshRawLen = 2*len(uuid.UUID{}) + secretLen // tenant id ‖ token id ‖ secret
)

// NewAPIKey mints an API key "sk_live_<id>_<secret>" (or sk_test_ when !live)
// and returns its id, the token to show the user once, and the hash to store.
// The id is a UUIDv7 so keys sort by creation time.
func NewAPIKey(live bool) (id uuid.UUID, token string, hash []byte, err error) {
	id, err = uuid.NewV7()
	if err != nil {
		return uuid.Nil, "", nil, fmt.Errorf("auth: api key id: %w", err)
	}
	secret, err := newSecret()
	if err != nil {
		return uuid.Nil, "", nil, err
	}
	prefix := apiKeyTestPrefix
	if live {
		prefix = apiKeyLivePrefix
	}
	token = prefix + hex.EncodeToString(id[:]) + "_" + hex.EncodeToString(secret)
	return id, token, HashSecret(secret), nil
}

// ParseAPIKey splits an API key into its id and secret. It accepts only the
// exact form NewAPIKey produces, so a malformed key fails here, before any
// database lookup. Whether the key is live or test is not returned: callers
// that care must check the prefix against the mode stored with the key, since
// the hash covers the secret alone.
func ParseAPIKey(token string) (id uuid.UUID, secret []byte, ok bool) {
	body, ok := strings.CutPrefix(token, apiKeyLivePrefix)
	if !ok {
		body, ok = strings.CutPrefix(token, apiKeyTestPrefix)
	}
	if !ok || len(body) != apiKeyBodyLen || body[apiKeyIDHexLen] != '_' {
		return uuid.Nil, nil, false
	}
	idBytes, ok := decodeLowerHex(body[:apiKeyIDHexLen])
	if !ok {
		return uuid.Nil, nil, false
	}
	secret, ok = decodeLowerHex(body[apiKeyIDHexLen+1:])
	if !ok {
		return uuid.Nil, nil, false
	}
	return uuid.UUID(idBytes), secret, true
}

// decodeLowerHex decodes s, accepting lowercase digits only so that each
// credential has exactly one spelling.
func decodeLowerHex(s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return nil, false
		}
	}
	b, err := hex.DecodeString(s)
	return b, err == nil
}

// NewRefreshToken mints a refresh token for a session in tenantID and returns
// its id, the token to hand to the client, and the hash to store. The tenant id
// is embedded so the token can be looked up within its tenant without first
// knowing who presents it.
func NewRefreshToken(tenantID uuid.UUID) (id uuid.UUID, token string, hash []byte, err error) {
	return NewTenantToken(refreshPrefix, tenantID)
}

// ParseRefreshToken splits a refresh token into tenant id, token id and secret,
// accepting only the exact form NewRefreshToken produces.
func ParseRefreshToken(token string) (tenantID, id uuid.UUID, secret []byte, ok bool) {
	return ParseTenantToken(refreshPrefix, token)
}

// NewTenantToken mints an opaque single-purpose token "<prefix><base64(tenant ‖ id ‖
// secret)>" (refresh tokens, invitations, password resets, email verifications) and
// returns its id, the token to hand out, and the hash to store. The tenant and the id are
// embedded so that the token is found in its tenant, by id, from the token alone.
func NewTenantToken(prefix string, tenantID uuid.UUID) (id uuid.UUID, token string, hash []byte, err error) {
	id, err = uuid.NewV7()
	if err != nil {
		return uuid.Nil, "", nil, fmt.Errorf("auth: token id: %w", err)
	}
	token, hash, err = NewTenantTokenFor(prefix, tenantID, id)
	return id, token, hash, err
}

// NewTenantTokenFor mints a token of NewTenantToken's form for an existing id, with a new
// secret: a record whose token is replaced (an invitation sent again) keeps its id.
func NewTenantTokenFor(prefix string, tenantID, id uuid.UUID) (token string, hash []byte, err error) {
	secret, err := newSecret()
	if err != nil {
		return "", nil, err
	}
	raw := make([]byte, 0, refreshRawLen)
	raw = append(raw, tenantID[:]...)
	raw = append(raw, id[:]...)
	raw = append(raw, secret...)
	return prefix + base64.RawURLEncoding.EncodeToString(raw), HashSecret(secret), nil
}

// ParseTenantToken splits a token of NewTenantToken's with this prefix into tenant id,
// token id and secret, accepting only the exact form it produces.
func ParseTenantToken(prefix, token string) (tenantID, id uuid.UUID, secret []byte, ok bool) {
	body, ok := strings.CutPrefix(token, prefix)
	if !ok || len(body) != base64.RawURLEncoding.EncodedLen(refreshRawLen) {
		return uuid.Nil, uuid.Nil, nil, false
	}
	// Strict rejects stray trailing bits; the length check after decoding
	// catches the line breaks the decoder would otherwise skip.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(body)
	if err != nil || len(raw) != refreshRawLen {
		return uuid.Nil, uuid.Nil, nil, false
	}
	n := len(uuid.UUID{})
	return uuid.UUID(raw[:n]), uuid.UUID(raw[n : 2*n]), raw[2*n:], true
}

// HashSecret returns the SHA-256 of a credential's secret, which is what gets
// stored. A fast hash is right here, unlike for passwords: the secret is 256
// random bits, so there is nothing to brute-force, and a slow KDF would only
// add latency to every authenticated request.
func HashSecret(secret []byte) []byte {
	sum := sha256.Sum256(secret)
	return sum[:]
}

// SecretMatches reports whether secret hashes to hash, in constant time so
// the comparison leaks nothing about the stored hash.
func SecretMatches(secret, hash []byte) bool {
	return subtle.ConstantTimeCompare(HashSecret(secret), hash) == 1
}

func newSecret() ([]byte, error) {
	b := make([]byte, secretLen)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("auth: random secret: %w", err)
	}
	return b, nil
}
