package auth

import (
	"bytes"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestAPIKeyRoundTrip(t *testing.T) {
	for _, live := range []bool{true, false} {
		id, token, hash, err := NewAPIKey(live)
		if err != nil {
			t.Fatalf("NewAPIKey: %v", err)
		}
		mode := "test"
		if live {
			mode = "live"
		}
		format := regexp.MustCompile(`^sk_` + mode + `_[0-9a-f]{32}_[0-9a-f]{64}$`)
		if !format.MatchString(token) {
			t.Errorf("token %q does not match %s", token, format)
		}
		if id.Version() != 7 {
			t.Errorf("id %s is version %d, want 7", id, id.Version())
		}

		gotID, secret, ok := ParseAPIKey(token)
		if !ok {
			t.Fatalf("ParseAPIKey(%q) failed", token)
		}
		if gotID != id {
			t.Errorf("ParseAPIKey id = %s, want %s", gotID, id)
		}
		if !SecretMatches(secret, hash) {
			t.Error("parsed secret does not match the returned hash")
		}
		secret[0] ^= 1
		if SecretMatches(secret, hash) {
			t.Error("a different secret matches the hash")
		}
	}
}

func TestParseAPIKeyRejectsMalformed(t *testing.T) {
	id := strings.Repeat("0123456789abcdef", 2)
	secret := strings.Repeat("0123456789abcdef", 4)
	valid := "sk_live_" + id + "_" + secret
	if _, _, ok := ParseAPIKey(valid); !ok {
		t.Fatalf("ParseAPIKey(%q) rejected the well-formed base case", valid)
	}

	tests := []struct{ name, token string }{
		{"empty", ""},
		{"prefix only", "sk_live_"},
		{"unknown mode", "sk_prod_" + id + "_" + secret},
		{"uppercase prefix", "SK_LIVE_" + id + "_" + secret},
		{"no prefix", id + "_" + secret},
		{"uuid with dashes", "sk_live_" + uuid.UUID([]byte(id[:16])).String() + "_" + secret},
		{"short id", "sk_live_" + id[1:] + "_" + secret},
		{"long id", "sk_live_0" + id + "_" + secret},
		{"short secret", "sk_live_" + id + "_" + secret[1:]},
		{"long secret", "sk_live_" + id + "_" + secret + "0"},
		{"odd split", "sk_live_" + id[1:] + "_0" + secret},
		{"wrong separator", "sk_live_" + id + "-" + secret},
		{"uppercase hex", "sk_live_" + strings.ToUpper(id) + "_" + secret},
		{"non-hex", "sk_live_" + id + "_" + strings.Replace(secret, "a", "g", 1)},
		{"trailing newline", valid + "\n"},
		{"leading space", " " + valid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if id, secret, ok := ParseAPIKey(tt.token); ok || id != uuid.Nil || secret != nil {
				t.Errorf("ParseAPIKey(%q) = %s, %x, %v; want a rejection", tt.token, id, secret, ok)
			}
		})
	}
}

func TestRefreshTokenRoundTrip(t *testing.T) {
	tenant := uuid.New()
	id, token, hash, err := NewRefreshToken(tenant)
	if err != nil {
		t.Fatalf("NewRefreshToken: %v", err)
	}
	if !strings.HasPrefix(token, "rt_") || len(token) != 3+86 {
		t.Errorf("token %q: want rt_ and 86 base64url characters", token)
	}

	gotTenant, gotID, secret, ok := ParseRefreshToken(token)
	if !ok {
		t.Fatalf("ParseRefreshToken(%q) failed", token)
	}
	if gotTenant != tenant || gotID != id {
		t.Errorf("ParseRefreshToken = tenant %s, id %s; want %s, %s", gotTenant, gotID, tenant, id)
	}
	if !SecretMatches(secret, hash) {
		t.Error("parsed secret does not match the returned hash")
	}
}

func TestParseRefreshTokenRejectsMalformed(t *testing.T) {
	body := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 64))
	if _, _, _, ok := ParseRefreshToken("rt_" + body); !ok {
		t.Fatal("ParseRefreshToken rejected the well-formed base case")
	}
	for _, token := range []string{
		"",
		"rt_",
		body,
		"rf_" + body,
		"rt_" + body[1:],
		"rt_" + body + "A",
		"rt_" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 64)), // padded
		"rt_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 64)), // + and / alphabet
		"rt_" + body[:85] + "B", // non-zero trailing bits
		"rt_" + body[:40] + "\n" + body[41:],
	} {
		if _, _, secret, ok := ParseRefreshToken(token); ok || secret != nil {
			t.Errorf("ParseRefreshToken(%q) accepted", token)
		}
	}
}

func TestSecretMatchesRejectsWrongLengthHash(t *testing.T) {
	secret := []byte("s")
	if SecretMatches(secret, HashSecret(secret)[:31]) || SecretMatches(secret, nil) {
		t.Error("SecretMatches accepted a truncated or empty hash")
	}
}
