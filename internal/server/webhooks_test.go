package server_test

import (
	"net/http"
	"testing"

	"github.com/saasbase/saasbase/internal/server/servertest"
)

// Rotating a webhook secret reveals it, so the real router must not store the answer under
// an Idempotency-Key: the same key again rotates again and shows a secret of its own, and
// no later GET shows one.
func TestRotateSecretIsNeverReplayed(t *testing.T) {
	s := servertest.New(t)
	ten := s.Signup(t, "rotate")
	id := s.Create(t, ten.Token, "/v1/webhook-endpoints", map[string]any{"url": "https://hooks.example.com/in", "event_types": []string{"*"}})
	path := "/v1/webhook-endpoints/" + id

	var secrets []string
	for range 2 {
		res := s.Do(t, servertest.Request{Method: "POST", Path: path + "/rotate-secret", Token: ten.Token,
			Header: map[string]string{"Idempotency-Key": "rotate-1"}})
		var ep struct{ ID, Secret string }
		res.Decode(t, &ep)
		if res.Status != http.StatusOK || ep.ID != id || ep.Secret == "" || res.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("rotate: %d %s (Idempotent-Replayed %q), want 200 with a fresh secret",
				res.Status, res.Body, res.Header.Get("Idempotent-Replayed"))
		}
		secrets = append(secrets, ep.Secret)
	}
	if secrets[0] == secrets[1] {
		t.Error("the same Idempotency-Key replayed a secret")
	}
	var ep map[string]any
	s.Get(t, ten.Token, path).Decode(t, &ep)
	if _, ok := ep["secret"]; ok {
		t.Errorf("GET shows a secret: %v", ep)
	}
}
