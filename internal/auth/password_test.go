package auth

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/saasbase/saasbase/internal/platform/errs"
)

// fastParams keep the tests quick; they are far too cheap for production.
var fastParams = PasswordParams{Memory: 64, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func mustHash(t *testing.T, pw string, p PasswordParams) string {
	t.Helper()
	h, err := HashPassword(pw, p)
	if err != nil {
		t.Fatalf("HashPassword: %v", err)
	}
	return h
}

func checkPassword(t *testing.T, pw, encoded string, want bool) {
	t.Helper()
	ok, err := VerifyPassword(pw, encoded)
	if err != nil {
		t.Fatalf("VerifyPassword(%q): %v", pw, err)
	}
	if ok != want {
		t.Errorf("VerifyPassword(%q) = %v, want %v", pw, ok, want)
	}
}

func TestHashPasswordFormat(t *testing.T) {
	h := mustHash(t, "correct horse", fastParams)
	// 16-byte salt and 32-byte hash in unpadded base64: 22 and 43 characters.
	phc := regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !phc.MatchString(h) {
		t.Errorf("hash %q is not the expected PHC string", h)
	}
	if h2 := mustHash(t, "correct horse", fastParams); h2 == h {
		t.Error("two hashes of one password are equal; the salt is not random")
	}
}

func TestVerifyPassword(t *testing.T) {
	h := mustHash(t, "correct horse", fastParams)
	checkPassword(t, "correct horse", h, true)
	checkPassword(t, "correct horsE", h, false)
	checkPassword(t, "", h, false)
}

func TestDefaultPasswordParams(t *testing.T) {
	h := mustHash(t, "correct horse", DefaultPasswordParams)
	if want := "$argon2id$v=19$m=19456,t=2,p=1$"; h[:len(want)] != want {
		t.Errorf("hash %q does not start with %q", h, want)
	}
	checkPassword(t, "correct horse", h, true)
	checkPassword(t, "battery staple", h, false)
	DummyVerify("correct horse") // must not panic
}

// A hash written by the reference implementation (its argon2id test vector)
// verifies, so hashes can move between it and us in either direction.
func TestVerifyPasswordReferenceVector(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB hash")
	}
	const ref = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	checkPassword(t, "password", ref, true)
	checkPassword(t, "Password", ref, false)
}

func TestVerifyPasswordRejectsMalformed(t *testing.T) {
	const salt, hash = "c29tZXNhbHQ", "CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	for _, encoded := range []string{
		"",
		"plaintext",
		"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + hash,
		"$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + hash,
		"$argon2id$m=64,t=1,p=1$" + salt + "$" + hash,
		"$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + hash,
		"$argon2id$v=19$m=64,t=1$" + salt + "$" + hash,
		"$argon2id$v=19$m=-1,t=1,p=1$" + salt + "$" + hash,
		"$argon2id$v=19$m=64,t=1,p=256$" + salt + "$" + hash,
		"$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + hash,
		"$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + hash,
		"$argon2id$v=19$m=8,t=1,p=2$" + salt + "$" + hash,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + hash + "$",
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "=$" + hash,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + hash[:10], // 7-byte hash
		"$argon2id$v=19$m=64,t=1,p=1$c29t$" + hash,              // 3-byte salt
		// Parameters that would let a planted hash exhaust memory or CPU
		// are refused before any hashing starts.
		"$argon2id$v=19$m=4194304,t=1,p=1$" + salt + "$" + hash,
		"$argon2id$v=19$m=64,t=1000000,p=1$" + salt + "$" + hash,
	} {
		if ok, err := VerifyPassword("password", encoded); ok || err == nil {
			t.Errorf("VerifyPassword(%q) = %v, %v; want false and an error", encoded, ok, err)
		}
	}
}

func TestHashPasswordRejectsBadParams(t *testing.T) {
	for _, p := range []PasswordParams{
		{},
		{Memory: 2 << 20, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Iterations: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Iterations: 1, Threads: 0, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Iterations: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
		{Memory: 64, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 4},
	} {
		if h, err := HashPassword("pw", p); err == nil {
			t.Errorf("HashPassword with %+v = %q, want an error", p, h)
		}
	}
}

func isServerBusy(err error) bool {
	var e *errs.Error
	return errors.As(err, &e) && e.Kind == errs.Unavailable && e.Code == "server_busy"
}

// With the bound at one and a password in progress, hashing, checking and the dummy check
// each wait their while and are refused server_busy; once the first is done, they go through.
func TestPasswordsAreBounded(t *testing.T) {
	ctx := context.Background()
	p := NewPasswords(fastParams, 1)
	p.wait = time.Millisecond // how long is not the point here: that it ends is
	hash := mustHash(t, "correct horse", fastParams)

	release := p.Hold()
	if _, err := p.Hash(ctx, "correct horse"); !isServerBusy(err) {
		t.Fatalf("Hash while the bound is full: %v, want server_busy", err)
	}
	if _, err := p.Verify(ctx, "correct horse", hash); !isServerBusy(err) {
		t.Fatalf("Verify while the bound is full: %v, want server_busy", err)
	}
	if err := p.DummyVerify(ctx, "correct horse"); !isServerBusy(err) {
		t.Fatalf("DummyVerify while the bound is full: %v, want server_busy", err)
	}
	release()

	h, err := p.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatalf("Hash with a free slot: %v", err)
	}
	if ok, err := p.Verify(ctx, "correct horse", h); !ok || err != nil {
		t.Fatalf("Verify with a free slot: %v, %v", ok, err)
	}
	if err := p.DummyVerify(ctx, "correct horse"); err != nil {
		t.Fatalf("DummyVerify with a free slot: %v", err)
	}
}

// A request that ends while its password waits is answered at once, not after the wait.
func TestPasswordWaitEndsWithTheRequest(t *testing.T) {
	p := NewPasswords(fastParams, 1)
	p.wait = time.Hour // the test would time out if the wait ran
	defer p.Hold()()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Hash(ctx, "correct horse"); !isServerBusy(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Hash for an ended request: %v, want server_busy caused by its context", err)
	}
}
