package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// secretPrefix starts every signing secret, as Standard Webhooks recommends, so a leaked one
// is recognisable.
const secretPrefix = "whsec_"

// encodeSecret is the form a tenant sees: "whsec_" + base64 of the key.
func encodeSecret(key []byte) string {
	return secretPrefix + base64.StdEncoding.EncodeToString(key)
}

// decodeSecret is encodeSecret's inverse.
func decodeSecret(secret string) ([]byte, error) {
	s, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return nil, errors.New("webhook: a secret starts with " + secretPrefix)
	}
	return base64.StdEncoding.DecodeString(s)
}

// Sign is the webhook-signature value of a message: "v1," and the base64 HMAC-SHA256, under
// key, of "<id>.<unix seconds>.<body>".
func Sign(key []byte, id string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ErrBadSignature is Verify's answer to a message that is not authentic or not fresh.
var ErrBadSignature = errors.New("webhook: signature does not verify")

// Verify checks a received message as a receiver should: one of the space-separated
// signatures in webhook-signature is a valid v1 signature under secret, and the timestamp
// is within tolerance of now (which stops replays of old messages).
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := decodeSecret(secret)
	if err != nil {
		return err
	}
	sec, err := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	ts := time.Unix(sec, 0)
	if now.Sub(ts) > tolerance || ts.Sub(now) > tolerance {
		return ErrBadSignature
	}
	want := Sign(key, h.Get(HeaderID), ts, body)
	for _, sig := range strings.Fields(h.Get(HeaderSignature)) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return ErrBadSignature
}
