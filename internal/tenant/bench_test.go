package tenant_test

import (
	"net/http"
	"testing"

	"github.com/saasbase/saasbase/internal/server/servertest"
)

// BenchmarkPasswordResetAnswer times POST /v1/auth/password-reset for a user that exists
// (a token and a mail are written) and for one that does not (nothing is): the two must not
// be told apart by their time (docs/teams.md). Run with -benchtime=50x: each answer takes
// at least the 250 ms floor.
func BenchmarkPasswordResetAnswer(b *testing.B) {
	s := servertest.New(b)
	a := s.Signup(b, "bench-reset")
	for _, c := range []struct{ name, email string }{{"known", a.OwnerEmail}, {"unknown", "nobody@example.com"}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				res, err := s.TryDo(servertest.Request{Method: "POST", Path: "/v1/auth/password-reset",
					Body: map[string]string{"tenant": a.Slug, "email": c.email}})
				if err != nil || res.Status != http.StatusAccepted {
					b.Fatalf("%v %v", res, err)
				}
			}
		})
	}
}
