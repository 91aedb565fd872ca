package tenant_test

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

func (s teams) requestReset(t *testing.T, slug, email string) *servertest.Response {
	t.Helper()
	return s.Do(t, servertest.Request{Method: "POST", Path: "/v1/auth/password-reset", Body: map[string]string{"tenant": slug, "email": email}})
}

func (s teams) confirmReset(t *testing.T, token, password string) *servertest.Response {
	t.Helper()
	return s.Do(t, servertest.Request{Method: "POST", Path: "/v1/auth/password-reset/confirm",
		Body: map[string]string{"token": token, "new_password": password}})
}

// TestPasswordReset: a real user gets the mail, an unknown one none, both the same 202; the
// link sets a new password once, signs the user out everywhere and is logged for admins.
func TestPasswordReset(t *testing.T) {
	s := newTeams(t, nil)
	a := s.Signup(t, "reset")
	_, email := s.AddUser(t, a, "member")
	pair := s.Login(t, a.Slug, email, servertest.UserPassword)

	unknown := "nobody-" + servertest.RandomSuffix() + "@example.com"
	answers := []*servertest.Response{
		s.requestReset(t, a.Slug, unknown),
		s.requestReset(t, "no-such-tenant-"+servertest.RandomSuffix(), email),
		s.requestReset(t, a.Slug, email),
	}
	for i, res := range answers {
		res.Want(t, http.StatusAccepted, "")
		if len(res.Body) != 0 || !bytes.Equal(res.Body, answers[0].Body) || res.Header.Get("Content-Type") != answers[0].Header.Get("Content-Type") {
			t.Errorf("answer %d differs: %q %q", i, res.Body, res.Header.Get("Content-Type"))
		}
	}
	token := link(t, s.mp.WaitFor(email, 1)[0], "/reset-password")
	// The known user's mail came after the unknown's request was answered: none was sent.
	if n := len(s.mp.To(unknown)); n != 0 {
		t.Errorf("%d mails to an address that is no user", n)
	}

	s.confirmReset(t, token, "a brand new password").Want(t, http.StatusNoContent, "")
	s.confirmReset(t, token, "yet another password").Want(t, http.StatusBadRequest, "invalid_token")
	s.PasswordGrant(t, a.Slug, email, servertest.UserPassword).Want(t, http.StatusUnauthorized, "invalid_credentials")
	s.Login(t, a.Slug, email, "a brand new password")
	s.RefreshGrant(t, pair.RefreshToken).WantUnauthorized(t)
	if n := countEvents(t, s.Server, a.Token, "user.password_reset"); n != 1 {
		t.Errorf("%d user.password_reset events, want 1", n)
	}
	// A token of another kind is not a reset token, and garbage is the same answer.
	s.confirmReset(t, "inv_"+token[4:], "a brand new password").Want(t, http.StatusBadRequest, "invalid_token")
	s.confirmReset(t, "rst_x", "a brand new password").Want(t, http.StatusBadRequest, "invalid_token")
}

// TestPasswordResetExpires: the link works for an hour.
func TestPasswordResetExpires(t *testing.T) {
	clk := clock.NewFixed(time.Now().UTC())
	s := newTeams(t, clk)
	a := s.Signup(t, "reset-exp")
	s.requestReset(t, a.Slug, a.OwnerEmail).Want(t, http.StatusAccepted, "")
	msgs := s.mp.WaitFor(a.OwnerEmail, 2) // signup's verification and the reset, in either order
	if !strings.Contains(msgs[1].Text, "/reset-password") {
		msgs[0], msgs[1] = msgs[1], msgs[0]
	}
	token := link(t, msgs[1], "/reset-password")
	clk.Advance(time.Hour + time.Second)
	s.confirmReset(t, token, "a brand new password").Want(t, http.StatusBadRequest, "invalid_token")
}

// TestPasswordResetLimits: past 3 an hour per user, requests still answer 202 and mail
// nothing; past the per-address budget, 429.
func TestPasswordResetLimits(t *testing.T) {
	s := newTeams(t, nil, func(c *config.Config) { c.RateLimitEnabled, c.AuthRatePerMinute = true, 8 })
	a := s.Signup(t, "reset-lim") // spends one of the address's 8
	_, email := s.AddUser(t, a, "member")
	for range 5 {
		s.requestReset(t, a.Slug, email).Want(t, http.StatusAccepted, "")
	}
	s.mp.WaitFor(email, 3)
	var queued int
	if err := pgtest.Owner(t).QueryRow(context.Background(), "SELECT count(*) FROM mail_outbox WHERE recipient = $1", email).Scan(&queued); err != nil {
		t.Fatal(err)
	}
	if queued != 3 {
		t.Errorf("%d reset mails for 5 requests, want 3", queued)
	}
	s.requestReset(t, a.Slug, email).Want(t, http.StatusAccepted, "")
	s.requestReset(t, a.Slug, email).Want(t, http.StatusAccepted, "")
	s.requestReset(t, a.Slug, email).Want(t, http.StatusTooManyRequests, "rate_limited")
	s.Do(t, servertest.Request{Method: "POST", Path: "/v1/invitations/accept", Body: map[string]string{"token": "inv_x", "password": servertest.UserPassword}}).
		Want(t, http.StatusTooManyRequests, "rate_limited")
}

// TestEmailVerification: signup mails a link; GET /v1/me shows the state; the link works once.
func TestEmailVerification(t *testing.T) {
	s := newTeams(t, nil)
	a := s.Signup(t, "verify")
	verified := func() bool {
		var me struct {
			EmailVerified *bool `json:"email_verified"`
		}
		s.Get(t, a.Token, "/v1/me").Decode(t, &me)
		return me.EmailVerified != nil && *me.EmailVerified
	}
	if verified() {
		t.Fatal("a new owner's email is verified before the link is used")
	}
	msg := s.mp.WaitFor(a.OwnerEmail, 1)[0]
	token := link(t, msg, "/verify-email")
	verify := func() *servertest.Response {
		return s.Do(t, servertest.Request{Method: "POST", Path: "/v1/auth/verify-email", Body: map[string]string{"token": token}})
	}
	verify().Want(t, http.StatusNoContent, "")
	if !verified() {
		t.Error("the email is not verified after the link was used")
	}
	verify().Want(t, http.StatusBadRequest, "invalid_token")
	// An API key has no email to verify.
	key := s.CreateAPIKey(t, a.Token, "k", "member")
	var me map[string]any
	s.Get(t, *key.Key, "/v1/me").Decode(t, &me)
	if _, ok := me["email_verified"]; ok {
		t.Errorf("an API key's /v1/me has email_verified: %v", me)
	}
}

// TestEmailVerificationRequiredByPlan: on a plan that requires it, an unverified user gets
// no new tokens (password or refresh) until the mailed link is used; other plans are free.
func TestEmailVerificationRequiredByPlan(t *testing.T) {
	s := newTeams(t, nil, func(c *config.Config) { c.EmailVerificationRequiredPlans = []string{"free"} })
	a := s.Signup(t, "must-verify")
	s.PasswordGrant(t, a.Slug, a.OwnerEmail, servertest.Password).Want(t, http.StatusForbidden, "forbidden")
	s.RefreshGrant(t, a.RefreshToken).Want(t, http.StatusForbidden, "forbidden")
	token := link(t, s.mp.WaitFor(a.OwnerEmail, 1)[0], "/verify-email")
	s.Do(t, servertest.Request{Method: "POST", Path: "/v1/auth/verify-email", Body: map[string]string{"token": token}}).
		Want(t, http.StatusNoContent, "")
	s.Login(t, a.Slug, a.OwnerEmail, servertest.Password)
	s.Refresh(t, a.RefreshToken) // not spent by the refusals above

	// A member added by an admin has no verified email either; another plan does not care.
	_, email := s.AddUser(t, a, "member")
	s.PasswordGrant(t, a.Slug, email, servertest.UserPassword).Want(t, http.StatusForbidden, "forbidden")
	s.OnPlan(t, a, "pro")
	s.Login(t, a.Slug, email, servertest.UserPassword)
}

// TestPasswordResetConfirmedOnce: two confirms of one link at once; one sets its password,
// the other is invalid_token.
func TestPasswordResetConfirmedOnce(t *testing.T) {
	s := newTeams(t, nil)
	a := s.Signup(t, "reset-race")
	_, email := s.AddUser(t, a, "member")
	s.requestReset(t, a.Slug, email).Want(t, http.StatusAccepted, "")
	token := link(t, s.mp.WaitFor(email, 1)[0], "/reset-password")
	passwords := []string{"the first new password", "the second new password"}
	statuses := make([]int, 2)
	var wg sync.WaitGroup
	for i := range passwords {
		wg.Go(func() {
			res, err := s.TryDo(servertest.Request{Method: "POST", Path: "/v1/auth/password-reset/confirm",
				Body: map[string]string{"token": token, "new_password": passwords[i]}})
			if err == nil {
				statuses[i] = res.Status
			}
		})
	}
	wg.Wait()
	won := slices.Index(statuses, http.StatusNoContent)
	if won < 0 || statuses[1-won] != http.StatusBadRequest {
		t.Fatalf("two confirms at once answered %v, want one 204 and one 400", statuses)
	}
	s.Login(t, a.Slug, email, passwords[won])
	s.PasswordGrant(t, a.Slug, email, passwords[1-won]).Want(t, http.StatusUnauthorized, "invalid_credentials")
}
