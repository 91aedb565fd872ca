package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/saasbase/saasbase/internal/platform/errs"
)

// PasswordParams are the argon2id cost parameters. Memory is in KiB.
type PasswordParams struct {
	Memory     uint32
	Iterations uint32
	Threads    uint8
	SaltLen    uint32
	KeyLen     uint32
}

// DefaultPasswordParams is OWASP's minimum recommended argon2id configuration
// (19 MiB, 2 iterations, 1 lane). Hashes keep their own parameters, so raising
// these later does not break existing passwords.
var DefaultPasswordParams = PasswordParams{Memory: 19 * 1024, Iterations: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Bounds on parameters. The upper ones matter when verifying: the parameters
// come from a stored hash, and a planted hash asking for, say, 64 GiB must not
// be able to take the process down.
const (
	maxMemoryKiB  = 1 << 20 // 1 GiB
	maxIterations = 64
	minSaltLen    = 8    // RFC 9106 §3.1
	minKeyLen     = 16   // shorter tags make guessing a matching password feasible
	maxLen        = 1024 // salt or key; far beyond any real use
)

func (p PasswordParams) validate() error {
	switch {
	case p.Memory > maxMemoryKiB:
		return fmt.Errorf("memory %d KiB is over %d", p.Memory, maxMemoryKiB)
	case p.Memory < 8*uint32(p.Threads):
		// Argon2 needs 8 KiB per lane; x/crypto would silently raise it.
		return fmt.Errorf("memory %d KiB is under 8 per thread", p.Memory)
	case p.Iterations < 1 || p.Iterations > maxIterations:
		return fmt.Errorf("iterations %d not in [1, %d]", p.Iterations, maxIterations)
	case p.Threads < 1:
		return errors.New("threads must be at least 1")
	case p.SaltLen < minSaltLen || p.SaltLen > maxLen:
		return fmt.Errorf("salt length %d not in [%d, %d]", p.SaltLen, minSaltLen, maxLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxLen:
		return fmt.Errorf("key length %d not in [%d, %d]", p.KeyLen, minKeyLen, maxLen)
	}
	return nil
}

// HashPassword hashes pw with argon2id and a fresh random salt, and returns
// the PHC string
//
//	$argon2id$v=19$m=<KiB>,t=<iterations>,p=<threads>$<salt>$<hash>
//
// with unpadded standard base64, as the reference implementation writes it.
func HashPassword(pw string, p PasswordParams) (string, error) {
	if err := p.validate(); err != nil {
		return "", fmt.Errorf("auth: password params: %w", err)
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: password salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Iterations, p.Memory, p.Threads, p.KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Iterations, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifyPassword reports whether pw matches the PHC-encoded argon2id hash,
// using the parameters stored in it. An error means the hash itself is
// malformed or asks for unreasonable work, not that pw is wrong.
func VerifyPassword(pw, encoded string) (bool, error) {
	p, salt, want, err := decodeHash(encoded)
	if err != nil {
		return false, fmt.Errorf("auth: password hash: %w", err)
	}
	got := argon2.IDKey([]byte(pw), salt, p.Iterations, p.Memory, p.Threads, p.KeyLen)
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// decodeHash splits a PHC string into its parameters, salt and hash, and
// rejects any that HashPassword would not have produced.
func decodeHash(encoded string) (PasswordParams, []byte, []byte, error) {
	// "$argon2id$v=19$m=..,t=..,p=..$salt$hash" splits into a leading "" and 5 fields.
	f := strings.Split(encoded, "$")
	if len(f) != 6 || f[0] != "" {
		return PasswordParams{}, nil, nil, errors.New("not in PHC format")
	}
	if f[1] != "argon2id" {
		return PasswordParams{}, nil, nil, fmt.Errorf("algorithm %q is not argon2id", f[1])
	}
	if f[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return PasswordParams{}, nil, nil, fmt.Errorf("unsupported version %q", f[2])
	}
	p, err := parseParams(f[3])
	if err != nil {
		return PasswordParams{}, nil, nil, err
	}
	salt, err := base64.RawStdEncoding.DecodeString(f[4])
	if err != nil {
		return PasswordParams{}, nil, nil, fmt.Errorf("salt: %w", err)
	}
	key, err := base64.RawStdEncoding.DecodeString(f[5])
	if err != nil {
		return PasswordParams{}, nil, nil, fmt.Errorf("hash: %w", err)
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	if err := p.validate(); err != nil {
		return PasswordParams{}, nil, nil, err
	}
	return p, salt, key, nil
}

// parseParams reads exactly "m=<n>,t=<n>,p=<n>", in that order, as written by
// the reference implementation and by HashPassword.
func parseParams(s string) (PasswordParams, error) {
	var p PasswordParams
	kv := strings.Split(s, ",")
	if len(kv) != 3 {
		return p, fmt.Errorf("parameters %q: want m=,t=,p=", s)
	}
	m, err1 := parseParam(kv[0], "m=", 32)
	t, err2 := parseParam(kv[1], "t=", 32)
	th, err3 := parseParam(kv[2], "p=", 8)
	if err := errors.Join(err1, err2, err3); err != nil {
		return p, fmt.Errorf("parameters %q: %w", s, err)
	}
	p.Memory, p.Iterations, p.Threads = uint32(m), uint32(t), uint8(th)
	return p, nil
}

func parseParam(s, prefix string, bits int) (uint64, error) {
	v, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return 0, fmt.Errorf("want %s<n>, got %q", prefix, s)
	}
	return strconv.ParseUint(v, 10, bits)
}

// dummyHash is a hash of an arbitrary password with the default parameters,
// computed on first use rather than at start-up, which it would slow down.
var dummyHash = sync.OnceValue(func() string {
	h, err := HashPassword("dummy password for unknown accounts", DefaultPasswordParams)
	if err != nil {
		panic("auth: hashing the dummy password: " + err.Error()) // only if DefaultPasswordParams is invalid
	}
	return h
})

// DummyVerify spends as long as VerifyPassword does against a hash made with
// DefaultPasswordParams, and discards the result. Login calls it when no
// account has the given email, so response time does not reveal which emails
// are registered.
func DummyVerify(pw string) {
	_, _ = VerifyPassword(pw, dummyHash())
}

// errServerBusy answers a password that could not be hashed or checked in time because as
// many as the bound allows are in progress. httpx adds Retry-After to every 503.
var errServerBusy = errs.E(errs.Unavailable, "server_busy", "too many passwords are being checked right now; retry after the Retry-After seconds")

// PasswordWait is the longest a password waits for a slot before it is answered 503
// server_busy: long enough to ride out a short burst, short enough that a flood is refused
// rather than queued.
const PasswordWait = 100 * time.Millisecond

// Passwords hashes and checks passwords with argon2id, at most a fixed number at once. Each
// one holds its memory parameter (19 MiB by default) and a core for tens of milliseconds, so
// without a bound a burst of signups or logins would take the memory and the CPU of every
// other request; past it, a password waits at most PasswordWait (or its request's context)
// for a slot and is then refused, so no queue grows without bound. Every path that hashes or
// verifies a password goes through one Passwords.
type Passwords struct {
	params PasswordParams
	slots  chan struct{} // a token per hash in progress
	wait   time.Duration
}

// NewPasswords hashes new passwords with params, at most concurrency at once
// (PASSWORD_HASH_CONCURRENCY; at least 1).
func NewPasswords(params PasswordParams, concurrency int) *Passwords {
	return &Passwords{params: params, slots: make(chan struct{}, max(concurrency, 1)), wait: PasswordWait}
}

// Hash is HashPassword under the bound, with the Passwords' parameters.
func (p *Passwords) Hash(ctx context.Context, pw string) (string, error) {
	release, err := p.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return HashPassword(pw, p.params)
}

// Verify is VerifyPassword under the bound.
func (p *Passwords) Verify(ctx context.Context, pw, encoded string) (bool, error) {
	release, err := p.acquire(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	return VerifyPassword(pw, encoded)
}

// DummyVerify is DummyVerify under the bound, which it counts against like any check, so a
// busy answer reveals no more than the time did.
func (p *Passwords) DummyVerify(ctx context.Context, pw string) error {
	release, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	DummyVerify(pw)
	return nil
}

// acquire takes a slot, waiting at most p.wait or until ctx is done.
func (p *Passwords) acquire(ctx context.Context) (release func(), err error) {
	release = func() { <-p.slots }
	select {
	case p.slots <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(p.wait)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
		return release, nil
	case <-t.C:
		return nil, errServerBusy
	case <-ctx.Done():
		return nil, errs.Wrap(ctx.Err(), errs.Unavailable, errServerBusy.Code, errServerBusy.Detail)
	}
}
