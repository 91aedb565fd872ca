package tenant_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saasbase/saasbase/internal/mail/mailtest"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// teams is the service with its mailer sending to a Mailpit of the test's own.
type teams struct {
	*servertest.Server
	mp *mailtest.Mailpit
}

const appURL = "https://app.example.com"

func newTeams(t *testing.T, clk clock.Clock, configure ...func(*config.Config)) teams {
	t.Helper()
	mp := mailtest.Start(t)
	s := servertest.NewAt(t, clk, append([]func(*config.Config){func(c *config.Config) {
		c.SMTPURL = "smtp://" + mp.SMTPAddr
		c.AppBaseURL = appURL
		c.MailFrom = "Acme Support <support@mail.example.com>"
	}}, configure...)...)
	s.App.Mailer.Interval = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.App.Mailer.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done }) // before the service closes (cleanups run last first)
	return teams{s, mp}
}

// link answers the token of the link to path in msg's text and checks that the HTML part
// links to the same place.
func link(t *testing.T, msg mailtest.Message, path string) string {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(appURL+path) + `\?token=([A-Za-z0-9_-]+)`).FindStringSubmatch(msg.Text)
	if m == nil {
		t.Fatalf("no link to %s in the mail %q: %s", path, msg.Subject, msg.Text)
	}
	if !strings.Contains(msg.HTML, `href="`+appURL+path+"?token="+m[1]+`"`) {
		t.Fatalf("the HTML part does not link to the text part's link: %s", msg.HTML)
	}
	return m[1]
}

func (s teams) invite(t *testing.T, token, email, role string) (id string) {
	t.Helper()
	return s.Create(t, token, "/v1/invitations", map[string]string{"email": email, "role": role})
}

func (s teams) accept(t *testing.T, token, password string) *servertest.Response {
	t.Helper()
	return s.Do(t, servertest.Request{Method: "POST", Path: "/v1/invitations/accept", Body: map[string]string{"token": token, "password": password}})
}

type accepted struct {
	User struct {
		ID    string `json:"id"`
		Email string `json:"email"`
		Role  string `json:"role"`
	} `json:"user"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// TestInvitationJourney is the whole invitation over HTTP and real SMTP: an owner invites,
// the mail arrives with the tenant's name and a working link, accepting signs the invitee in
// with the role given, the link works once, and the event log tells admins (not members).
func TestInvitationJourney(t *testing.T) {
	s := newTeams(t, nil)
	a := s.Signup(t, "journey")
	invitee := "ada-" + servertest.RandomSuffix() + "@example.com"
	id := s.invite(t, a.Token, invitee, "admin")

	msgs := s.mp.WaitFor(invitee, 1)
	msg := msgs[0]
	if !strings.Contains(msg.Subject, "journey") || !strings.Contains(msg.Text, "journey") || !strings.Contains(msg.HTML, "journey") {
		t.Errorf("the mail does not name the tenant: %q %s", msg.Subject, msg.Text)
	}
	if msg.From.Address != "support@mail.example.com" || !strings.HasSuffix(msg.MessageID, "@mail.example.com") {
		t.Errorf("From %v, Message-ID %q", msg.From, msg.MessageID)
	}
	if !strings.Contains(msg.Text, a.OwnerEmail) || !strings.Contains(msg.Text, "as admin") {
		t.Errorf("the mail does not say who invites, as what: %s", msg.Text)
	}
	token := link(t, msg, "/accept-invitation")

	res := s.accept(t, token, "a password of ada's own")
	res.Want(t, http.StatusCreated, "")
	var got accepted
	res.Decode(t, &got)
	if got.User.Email != invitee || got.User.Role != "admin" {
		t.Fatalf("accepted as %+v, want %s admin", got.User, invitee)
	}
	me := s.Get(t, got.AccessToken, "/v1/me")
	me.Want(t, http.StatusOK, "")
	var meBody struct {
		Role          string `json:"role"`
		EmailVerified *bool  `json:"email_verified"`
	}
	me.Decode(t, &meBody)
	if meBody.Role != "admin" || meBody.EmailVerified == nil || !*meBody.EmailVerified {
		t.Errorf("GET /v1/me = %s, want an admin with a verified email", me.Body)
	}
	// The invitee now signs in with their password, and is a user of the tenant.
	s.Login(t, a.Slug, invitee, "a password of ada's own")
	s.Get(t, got.AccessToken, "/v1/users/"+got.User.ID).Want(t, http.StatusOK, "")

	// The link works once.
	s.accept(t, token, "another password again").Want(t, http.StatusBadRequest, "invalid_token")

	var list struct {
		Data []struct {
			ID, Status string
		}
	}
	s.Get(t, a.Token, "/v1/invitations").Decode(t, &list)
	if len(list.Data) != 1 || list.Data[0].ID != id || list.Data[0].Status != "accepted" {
		t.Errorf("GET /v1/invitations = %+v", list.Data)
	}

	// The events, for admins only; the mail itself is not an event.
	for _, typ := range []string{"invitation.created", "invitation.accepted"} {
		if n := countEvents(t, s.Server, a.Token, typ); n != 1 {
			t.Errorf("%d %s events for the owner, want 1", n, typ)
		}
	}
	_, member := s.LoginNewUser(t, a, "member")
	if n := countEvents(t, s.Server, member.AccessToken, "invitation.created"); n != 0 {
		t.Errorf("a member sees %d invitation.created events", n)
	}
	all := s.Get(t, a.Token, "/v1/events?limit=200")
	if strings.Contains(string(all.Body), token) || strings.Contains(string(all.Body), `"type":"mail`) {
		t.Errorf("the event log shows the mail or its token: %s", all.Body)
	}
}

func countEvents(t *testing.T, s *servertest.Server, token, typ string) int {
	t.Helper()
	var page struct{ Data []struct{ Type string } }
	s.Get(t, token, "/v1/events?type="+typ).Decode(t, &page)
	return len(page.Data)
}

// TestInvitationResendRevokeExpiry: a resend mails a new link and retires the old one; a
// revoked invitation's link is refused; an expired one too, alike, and a resend revives it.
func TestInvitationResendRevokeExpiry(t *testing.T) {
	clk := clock.NewFixed(time.Now().UTC())
	s := newTeams(t, clk)
	a := s.Signup(t, "resend")

	bob := "bob-" + servertest.RandomSuffix() + "@example.com"
	id := s.invite(t, a.Token, bob, "member")
	first := link(t, s.mp.WaitFor(bob, 1)[0], "/accept-invitation")
	res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/invitations/" + id + "/resend", Token: a.Token})
	res.Want(t, http.StatusAccepted, "")
	msgs := s.mp.WaitFor(bob, 2)
	second := link(t, msgs[1], "/accept-invitation")
	if first == second || msgs[0].MessageID == msgs[1].MessageID {
		t.Fatal("the resent mail has the same link or Message-ID as the first: it is another mail")
	}
	s.accept(t, first, servertest.UserPassword).Want(t, http.StatusBadRequest, "invalid_token")

	// Revoked: the link is refused like any bad one.
	s.Do(t, servertest.Request{Method: "DELETE", Path: "/v1/invitations/" + id, Token: a.Token}).Want(t, http.StatusNoContent, "")
	s.accept(t, second, servertest.UserPassword).Want(t, http.StatusBadRequest, "invalid_token")
	s.Do(t, servertest.Request{Method: "POST", Path: "/v1/invitations/" + id + "/resend", Token: a.Token}).Want(t, http.StatusConflict, "conflict")

	// Expired: 7 days on, the same answer; listed as expired; a resend makes a link that works.
	carol := "carol-" + servertest.RandomSuffix() + "@example.com"
	cid := s.invite(t, a.Token, carol, "member")
	old := link(t, s.mp.WaitFor(carol, 1)[0], "/accept-invitation")
	clk.Advance(7*24*time.Hour + time.Minute)
	s.accept(t, old, servertest.UserPassword).Want(t, http.StatusBadRequest, "invalid_token")
	owner := s.TokenFor(t, a)
	var list struct{ Data []struct{ ID, Status string } }
	s.Get(t, owner, "/v1/invitations").Decode(t, &list)
	for _, inv := range list.Data {
		want := map[string]string{id: "revoked", cid: "expired"}[inv.ID]
		if inv.Status != want {
			t.Errorf("invitation %s is %s, want %s", inv.ID, inv.Status, want)
		}
	}
	s.Do(t, servertest.Request{Method: "POST", Path: "/v1/invitations/" + cid + "/resend", Token: owner}).Want(t, http.StatusAccepted, "")
	fresh := link(t, s.mp.WaitFor(carol, 2)[1], "/accept-invitation")
	s.accept(t, fresh, servertest.UserPassword).Want(t, http.StatusCreated, "")

	// A new invitation for an email with an expired one retires the old one on the way.
	dave := "dave-" + servertest.RandomSuffix() + "@example.com"
	s.invite(t, owner, dave, "member")
	s.Do(t, servertest.Request{Method: "POST", Path: "/v1/invitations", Token: owner, Body: map[string]string{"email": dave, "role": "member"}}).
		Want(t, http.StatusConflict, "conflict")
	clk.Advance(7*24*time.Hour + time.Minute)
	owner = s.TokenFor(t, a)
	s.invite(t, owner, dave, "member")
}

// TestInvitationRank: nobody invites above their own role, nor revokes or resends an
// invitation above it; an invitation dies with its inviter's right to grant its role.
func TestInvitationRank(t *testing.T) {
	s := newTeams(t, nil)
	a := s.Signup(t, "rank")
	_, admin := s.LoginNewUser(t, a, "admin")
	_, member := s.LoginNewUser(t, a, "member")

	res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/invitations", Token: admin.AccessToken,
		Body: map[string]string{"email": "boss@example.com", "role": "owner"}})
	res.Want(t, http.StatusForbidden, "forbidden")
	res = s.Do(t, servertest.Request{Method: "POST", Path: "/v1/invitations", Token: member.AccessToken,
		Body: map[string]string{"email": "friend@example.com", "role": "member"}})
	res.Want(t, http.StatusForbidden, "forbidden")

	ownerInv := s.invite(t, a.Token, "co-owner-"+servertest.RandomSuffix()+"@example.com", "owner")
	for _, req := range []servertest.Request{
		{Method: "DELETE", Path: "/v1/invitations/" + ownerInv},
		{Method: "POST", Path: "/v1/invitations/" + ownerInv + "/resend"},
	} {
		req.Token = admin.AccessToken
		s.Do(t, req).Want(t, http.StatusForbidden, "forbidden")
	}

	// An admin invites an admin, then is demoted: the invitation no longer grants admin.
	adminID, adminEmail := s.AddUser(t, a, "admin")
	adminPair := s.Login(t, a.Slug, adminEmail, servertest.UserPassword)
	eve := "eve-" + servertest.RandomSuffix() + "@example.com"
	s.invite(t, adminPair.AccessToken, eve, "admin")
	token := link(t, s.mp.WaitFor(eve, 1)[0], "/accept-invitation")
	s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/users/" + adminID, Token: a.Token, Body: map[string]string{"role": "member"}}).
		Want(t, http.StatusOK, "")
	s.accept(t, token, servertest.UserPassword).Want(t, http.StatusBadRequest, "invalid_token")
}

// TestInvitationAcceptedOnce: two accepts of one link at once; one wins, the other is the
// invalid_token answer, and one user exists.
func TestInvitationAcceptedOnce(t *testing.T) {
	s := newTeams(t, nil)
	a := s.Signup(t, "race")
	for range 3 {
		email := "racer-" + servertest.RandomSuffix() + "@example.com"
		s.invite(t, a.Token, email, "member")
		token := link(t, s.mp.WaitFor(email, 1)[0], "/accept-invitation")
		var (
			wg       sync.WaitGroup
			statuses = make([]int, 2)
		)
		for i := range statuses {
			wg.Go(func() {
				res, err := s.TryDo(servertest.Request{Method: "POST", Path: "/v1/invitations/accept",
					Body: map[string]string{"token": token, "password": servertest.UserPassword}})
				if err == nil {
					statuses[i] = res.Status
				}
			})
		}
		wg.Wait()
		if !(statuses[0] == 201 && statuses[1] == 400 || statuses[0] == 400 && statuses[1] == 201) {
			t.Fatalf("two accepts at once answered %v, want one 201 and one 400", statuses)
		}
	}
}

// TestInvitationTenantIsolation: another tenant's invitation is a 404 to every route, and
// an email's membership is per tenant.
func TestInvitationTenantIsolation(t *testing.T) {
	s := newTeams(t, nil)
	a, b := s.Signup(t, "iso-a"), s.Signup(t, "iso-b")
	email := "shared-" + servertest.RandomSuffix() + "@example.com"
	id := s.invite(t, a.Token, email, "member")
	for _, req := range []servertest.Request{
		{Method: "DELETE", Path: "/v1/invitations/" + id},
		{Method: "POST", Path: "/v1/invitations/" + id + "/resend"},
	} {
		req.Token = b.Token
		s.Do(t, req).Want(t, http.StatusNotFound, "not_found")
	}
	var list struct{ Data []struct{ ID string } }
	s.Get(t, b.Token, "/v1/invitations").Decode(t, &list)
	if len(list.Data) != 0 {
		t.Errorf("tenant b lists %d invitations of tenant a", len(list.Data))
	}
	// b may invite the same email; a's link makes a member of a alone.
	s.invite(t, b.Token, email, "member")
	msgs := s.mp.WaitFor(email, 2)
	if !strings.Contains(msgs[0].Subject, "iso-a") {
		msgs[0], msgs[1] = msgs[1], msgs[0]
	}
	res := s.accept(t, link(t, msgs[0], "/accept-invitation"), servertest.UserPassword)
	res.Want(t, http.StatusCreated, "")
	var got accepted
	res.Decode(t, &got)
	s.Get(t, got.AccessToken, "/v1/tenant").Want(t, http.StatusOK, "")
	s.Login(t, a.Slug, email, servertest.UserPassword)
	s.PasswordGrant(t, b.Slug, email, servertest.UserPassword).Want(t, http.StatusUnauthorized, "invalid_credentials")
}

// TestInvitationEmailTaken: inviting a member is 409 email_taken, and so is accepting once
// the email became a member some other way.
func TestInvitationEmailTaken(t *testing.T) {
	s := newTeams(t, nil)
	a := s.Signup(t, "taken")
	s.Do(t, servertest.Request{Method: "POST", Path: "/v1/invitations", Token: a.Token,
		Body: map[string]string{"email": strings.ToUpper(a.OwnerEmail), "role": "member"}}).Want(t, http.StatusConflict, "email_taken")
	email := "late-" + servertest.RandomSuffix() + "@example.com"
	s.invite(t, a.Token, email, "member")
	token := link(t, s.mp.WaitFor(email, 1)[0], "/accept-invitation")
	s.Create(t, a.Token, "/v1/users", map[string]string{"email": email, "password": servertest.UserPassword, "role": "member"})
	s.accept(t, token, servertest.UserPassword).Want(t, http.StatusConflict, "email_taken")
}

// TestInvitationSuspendedTenant: a suspended tenant takes no one in.
func TestInvitationSuspendedTenant(t *testing.T) {
	s := newTeams(t, nil)
	a := s.Signup(t, "suspended")
	email := "joiner-" + servertest.RandomSuffix() + "@example.com"
	s.invite(t, a.Token, email, "member")
	token := link(t, s.mp.WaitFor(email, 1)[0], "/accept-invitation")
	s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/admin/tenants/" + a.ID, Token: s.PlatformToken(t),
		Body: map[string]string{"status": "suspended"}}).Want(t, http.StatusOK, "")
	s.accept(t, token, servertest.UserPassword).Want(t, http.StatusForbidden, "tenant_suspended")
	s.PasswordGrant(t, a.Slug, email, servertest.UserPassword).Want(t, http.StatusUnauthorized, "invalid_credentials")
}
