package secretbox_test

import (
	"bytes"
	"testing"

	"github.com/saasbase/saasbase/internal/platform/secretbox"
)

func TestSecretBox(t *testing.T) {
	old := bytes.Repeat([]byte{1}, 32)
	current := bytes.Repeat([]byte{2}, 32)
	before, err := secretbox.New(old)
	if err != nil {
		t.Fatal(err)
	}
	sealedBefore, err := before.Seal([]byte("hmac key"), []byte("row 1"))
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(current, old)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := box.Seal([]byte("hmac key"), []byte("row 1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("hmac key")) {
		t.Fatal("the sealed secret contains the secret")
	}
	for name, s := range map[string][]byte{"current key": sealed, "previous key": sealedBefore} {
		if got, err := box.Open(s, []byte("row 1")); err != nil || string(got) != "hmac key" {
			t.Errorf("%s: Open = %q, %v", name, got, err)
		}
	}
	if _, err := box.Open(sealed, []byte("row 2")); err == nil {
		t.Error("a secret sealed for one row opened for another")
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := box.Open(tampered, []byte("row 1")); err == nil {
		t.Error("a tampered secret opened")
	}
	if _, err := before.Open(sealed, []byte("row 1")); err == nil {
		t.Error("a box without the current key opened its secret")
	}
	if _, err := secretbox.New([]byte("short")); err == nil {
		t.Error("a 5-byte key was accepted")
	}
}
