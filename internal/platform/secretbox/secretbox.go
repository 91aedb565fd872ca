// Package secretbox seals secrets the service must read back (webhook signing keys, the
// tokens of mail not yet sent) with AES-256-GCM under a key the database never sees.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Box seals secrets with AES-256-GCM. A webhook signature needs the key itself, and a mail
// must carry its link's token, so unlike API keys such a secret cannot be stored hashed; sealed, a copy of the database alone
// does not reveal it. A sealed secret starts with the id of the key that sealed it, so keys
// can be rotated: the first key seals, every key opens.
type Box struct {
	keys []boxKey
}

type boxKey struct {
	id   [4]byte
	aead cipher.AEAD
}

// New takes the 32-byte key that seals (WEBHOOK_SECRET_KEY) and older keys that
// still open what they sealed.
func New(key []byte, previous ...[]byte) (*Box, error) {
	b := &Box{}
	for i, k := range append([][]byte{key}, previous...) {
		if len(k) != 32 {
			return nil, fmt.Errorf("secretbox: key %d is %d bytes, want 32", i, len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(k)
		b.keys = append(b.keys, boxKey{id: [4]byte(sum[:4]), aead: aead})
	}
	return b, nil
}

// Seal encrypts plaintext bound to aad (the row it belongs to, so that a sealed secret
// copied into another row does not open).
func (b *Box) Seal(plaintext, aad []byte) ([]byte, error) {
	k := b.keys[0]
	out := make([]byte, 4+k.aead.NonceSize(), 4+k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	copy(out, k.id[:])
	if _, err := rand.Read(out[4:]); err != nil {
		return nil, err
	}
	return k.aead.Seal(out, out[4:], plaintext, aad), nil
}

var errCannotOpen = errors.New("secretbox: sealed secret does not open with any configured key")

// Open decrypts what Seal sealed with the same aad.
func (b *Box) Open(sealed, aad []byte) ([]byte, error) {
	for _, k := range b.keys {
		n := 4 + k.aead.NonceSize()
		if len(sealed) < n || [4]byte(sealed[:4]) != k.id {
			continue
		}
		return k.aead.Open(nil, sealed[4:n], sealed[n:], aad)
	}
	return nil, errCannotOpen
}
