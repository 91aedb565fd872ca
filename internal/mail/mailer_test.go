package mail_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/saasbase/saasbase/internal/mail"
	"github.com/saasbase/saasbase/internal/mail/mailtest"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/platform/secretbox"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type fixture struct {
	t      testing.TB
	db     *postgres.DB
	clock  *clock.Fixed
	box    *secretbox.Box
	queue  *mail.Outbox
	tenant uuid.UUID
	mp     *mailtest.Mailpit
}

func newFixture(t testing.TB, tenantName string) *fixture {
	t.Helper()
	box, err := secretbox.New([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, db: pgtest.DB(t), clock: clock.NewFixed(time.Now().UTC()), box: box, tenant: uuid.Must(uuid.NewV7())}
	f.queue = &mail.Outbox{Clock: f.clock, Secrets: box}
	_, err = pgtest.Owner(t).Exec(context.Background(), `INSERT INTO tenants (id, name, slug, plan_code, created_at, updated_at)
		VALUES ($1, $2, $3, 'free', now(), now())`, f.tenant, tenantName, "mail-"+f.tenant.String()[24:])
	if err != nil {
		t.Fatal(err)
	}
	f.mp = mailtest.Start(t)
	return f
}

// mailer answers a mailer of the fixture sending through sender.
func (f *fixture) mailer(sender mail.Sender) *mail.Mailer {
	return &mail.Mailer{
		DB: f.db, Clock: f.clock, Secrets: f.box, Sender: sender,
		From: netmail.Address{Name: "Acme", Address: "no-reply@example.com"}, BaseURL: "https://app.example.com",
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Schedule: []time.Duration{time.Minute, time.Minute},
	}
}

func (f *fixture) smtp(addr string) *mail.SMTP {
	s, err := mail.ParseSMTPURL("smtp://" + addr)
	if err != nil {
		f.t.Fatal(err)
	}
	s.Timeout = 5 * time.Second
	return s
}

// enqueue commits a mail request and answers its id.
func (f *fixture) enqueue(to string) uuid.UUID {
	f.t.Helper()
	var id uuid.UUID
	err := f.db.InTenantTx(context.Background(), f.tenant, func(tx pgx.Tx) (err error) {
		id, err = f.queue.Enqueue(context.Background(), tx, f.tenant, mail.Request{
			Template: mail.PasswordReset, To: to, Token: "rst_secret-token-" + uuid.NewString(), Data: map[string]string{},
		})
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return id
}

type row struct {
	status   string
	attempts int
	sealed   bool
	lastErr  *string
}

func (f *fixture) row(id uuid.UUID) row {
	f.t.Helper()
	var r row
	err := pgtest.Owner(f.t).QueryRow(context.Background(),
		"SELECT status, attempts, token_sealed IS NOT NULL, last_error FROM mail_outbox WHERE id = $1", id).
		Scan(&r.status, &r.attempts, &r.sealed, &r.lastErr)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) runOnce(m *mail.Mailer) int {
	f.t.Helper()
	n, err := m.RunOnce(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

func newProxy(t testing.TB, upstream string) *toxiproxy.Proxy {
	t.Helper()
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(server, "smtp-"+uuid.NewString()[:8], "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// TestMailSurvivesSMTPOutage: with the SMTP server cut off the attempt fails and is
// scheduled again; once it is back the mail arrives, once, with the Message-ID of its id.
func TestMailSurvivesSMTPOutage(t *testing.T) {
	f := newFixture(t, "Outage Inc")
	proxy := newProxy(t, f.mp.SMTPAddr)
	m := f.mailer(f.smtp(proxy.Listen))
	proxy.Stop()
	id := f.enqueue("ada@example.com")

	if n := f.runOnce(m); n != 1 {
		t.Fatalf("claimed %d mails, want 1", n)
	}
	if r := f.row(id); r.status != "pending" || r.attempts != 1 || r.lastErr == nil || !r.sealed {
		t.Fatalf("after a failed attempt: %+v", r)
	}
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	if n := f.runOnce(m); n != 0 {
		t.Fatalf("a mail was tried again before its pause: %d", n)
	}
	f.clock.Advance(time.Minute)
	f.runOnce(m)
	msgs := f.mp.WaitFor("ada@example.com", 1)
	if len(msgs) != 1 || msgs[0].MessageID != id.String()+"@example.com" {
		t.Fatalf("received %d messages, Message-ID %q; want one with %s@example.com", len(msgs), msgs[0].MessageID, id)
	}
	if !strings.Contains(msgs[0].Subject, "Outage Inc") || !strings.Contains(msgs[0].Text, "https://app.example.com/reset-password?token=rst_secret-token-") {
		t.Errorf("unexpected mail: %q %s", msgs[0].Subject, msgs[0].Text)
	}
	if r := f.row(id); r.status != "sent" || r.attempts != 2 || r.sealed {
		t.Errorf("after sending: %+v (the token must be forgotten)", r)
	}
}

// lostAck sends, then reports a failure, as when the connection drops after the server
// accepted the message but before the mailer recorded it.
type lostAck struct{ mail.Sender }

func (l lostAck) Send(ctx context.Context, e mail.Envelope) error {
	if err := l.Sender.Send(ctx, e); err != nil {
		return err
	}
	return errors.New("connection lost after DATA")
}

// TestMailCopiesShareMessageID: sending is at least once; a copy sent again is the same
// message, Message-ID and all, so that a mail client can drop it.
func TestMailCopiesShareMessageID(t *testing.T) {
	f := newFixture(t, "Twice")
	id := f.enqueue("bob@example.com")
	f.runOnce(f.mailer(lostAck{f.smtp(f.mp.SMTPAddr)}))
	f.clock.Advance(time.Minute)
	f.runOnce(f.mailer(f.smtp(f.mp.SMTPAddr)))
	msgs := f.mp.WaitFor("bob@example.com", 2)
	if len(msgs) != 2 || msgs[0].MessageID != msgs[1].MessageID || msgs[0].MessageID != id.String()+"@example.com" {
		t.Fatalf("copies with Message-IDs %q, %q; want both %s@example.com", msgs[0].MessageID, msgs[1].MessageID, id)
	}
	if msgs[0].Text != msgs[1].Text || msgs[0].Subject != msgs[1].Subject {
		t.Error("the two copies differ")
	}
}

// TestMailRestartLosesNothing: a mail committed, then claimed by a mailer that dies before
// sending, is sent by the next one once the claim lapses.
func TestMailRestartLosesNothing(t *testing.T) {
	f := newFixture(t, "Restart")
	id := f.enqueue("carol@example.com")
	// The mailer that dies: it claimed the mail (a 2-minute lease) and sent nothing.
	var claimed int
	if err := f.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM app.claim_mail($1, '2 minutes', 10)", f.clock.Now()).Scan(&claimed); err != nil || claimed != 1 {
		t.Fatalf("claim: %d %v", claimed, err)
	}
	next := f.mailer(f.smtp(f.mp.SMTPAddr))
	if n := f.runOnce(next); n != 0 {
		t.Fatalf("another mailer took a mail under a live claim: %d", n)
	}
	f.clock.Advance(2*time.Minute + time.Second)
	if n := f.runOnce(next); n != 1 {
		t.Fatalf("claimed %d mails after the lease lapsed, want 1", n)
	}
	if msgs := f.mp.WaitFor("carol@example.com", 1); len(msgs) != 1 || msgs[0].MessageID != id.String()+"@example.com" {
		t.Fatalf("got %d messages", len(msgs))
	}
}

// TestMailGivenUp: after the last attempt the mail is dead, its token forgotten, and it
// never reaches the event log or the events' dead letters.
func TestMailGivenUp(t *testing.T) {
	f := newFixture(t, "Dead")
	proxy := newProxy(t, f.mp.SMTPAddr)
	proxy.Stop()
	m := f.mailer(f.smtp(proxy.Listen))
	id := f.enqueue("dave@example.com")
	for i := range 3 {
		if n := f.runOnce(m); n != 1 {
			t.Fatalf("attempt %d: claimed %d mails, want 1: %+v", i+1, n, f.row(id))
		}
		f.clock.Advance(time.Minute)
	}
	if r := f.row(id); r.status != "dead" || r.attempts != 3 || r.sealed || r.lastErr == nil {
		t.Fatalf("after the last attempt: %+v", r)
	}
	var events, dead int
	err := pgtest.Owner(t).QueryRow(context.Background(),
		"SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM event_dead_letters)").Scan(&events, &dead)
	if err != nil || events != 0 || dead != 0 {
		t.Fatalf("outbox %d, event dead letters %d (%v): mail is not an event", events, dead, err)
	}
}

// TestMailRequiredTLS: tls=required refuses a server without STARTTLS (nothing is sent in
// clear); with a server that offers it, the mail goes over TLS.
func TestMailRequiredTLS(t *testing.T) {
	f := newFixture(t, "TLS")
	required, err := mail.ParseSMTPURL("smtp://" + f.mp.SMTPAddr + "?tls=required")
	if err != nil {
		t.Fatal(err)
	}
	err = required.Send(context.Background(), mail.Envelope{From: "a@example.com", To: "eve@example.com", Message: []byte("Subject: x\r\n\r\nx\r\n")})
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("Send to a server without STARTTLS with tls=required: %v", err)
	}

	certFile, keyFile, pool := selfSigned(t)
	secure := mailtest.Start(t, "--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile, "--smtp-require-starttls")
	s, err := mail.ParseSMTPURL("smtp://" + secure.SMTPAddr + "?tls=required")
	if err != nil {
		t.Fatal(err)
	}
	s.TLSConfig = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	f.enqueue("eve@example.com")
	f.runOnce(f.mailer(s))
	secure.WaitFor("eve@example.com", 1)
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and answers a pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestMailTenantNameStaysInSubject: a tenant's name with line breaks cannot add headers.
func TestMailTenantNameStaysInSubject(t *testing.T) {
	f := newFixture(t, "Evil\r\nBcc: spy@example.com\r\n")
	f.enqueue("frank@example.com")
	f.runOnce(f.mailer(f.smtp(f.mp.SMTPAddr)))
	msg := f.mp.WaitFor("frank@example.com", 1)[0]
	if all := f.mp.Messages(); len(all) != 1 || len(all[0].To) != 1 || len(f.mp.To("spy@example.com")) != 0 {
		t.Fatalf("the tenant's name added a recipient: %+v", all)
	}
	if !strings.Contains(msg.Subject, "Evil Bcc: spy@example.com") {
		t.Errorf("subject %q", msg.Subject)
	}
}

func TestParseSMTPURL(t *testing.T) {
	for _, c := range []struct {
		url                string
		addr               string
		implicit, required bool
		user, pass         string
		bad                bool
	}{
		{url: "smtp://127.0.0.1:1025", addr: "127.0.0.1:1025"},
		{url: "smtp://mail.example.com", addr: "mail.example.com:587"},
		{url: "smtp://u:p%40ss@mail.example.com:587?tls=required", addr: "mail.example.com:587", required: true, user: "u", pass: "p@ss"},
		{url: "smtps://mail.example.com", addr: "mail.example.com:465", implicit: true, required: true},
		{url: "http://mail.example.com", bad: true},
		{url: "smtp://mail.example.com?tls=maybe", bad: true},
		{url: "smtp://", bad: true},
	} {
		s, err := mail.ParseSMTPURL(c.url)
		if c.bad {
			if err == nil {
				t.Errorf("%s: no error", c.url)
			}
			continue
		}
		if err != nil || s.Addr != c.addr || s.ImplicitTLS != c.implicit || s.RequireTLS != c.required || s.Username != c.user || s.Password != c.pass {
			t.Errorf("%s: %+v %v", c.url, s, err)
		}
	}
}

// TestMailReap: finished mail goes after Keep; pending mail stays whatever its age.
func TestMailReap(t *testing.T) {
	f := newFixture(t, "Reap")
	sent := f.enqueue("gina@example.com")
	f.runOnce(f.mailer(f.smtp(f.mp.SMTPAddr)))
	pending := f.enqueue("hugo@example.com")
	f.clock.Advance(mail.Keep + time.Hour)
	m := f.mailer(nil)
	if _, err := m.Reap(context.Background()); err != nil {
		t.Fatal(err)
	}
	rows, _ := pgtest.Owner(t).Query(context.Background(), "SELECT id FROM mail_outbox WHERE tenant_id = $1", f.tenant)
	left, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil || len(left) != 1 || left[0] != pending {
		t.Fatalf("left %v (%v), want only the pending %s (sent: %s)", left, err, pending, sent)
	}
}

// TestMailAuth: credentials in SMTP_URL are sent (AUTH PLAIN) and a server that requires
// them accepts the mail; without them it refuses.
func TestMailAuth(t *testing.T) {
	newFixture(t, "Auth") // the package database and a Mailpit, as in every test here
	authFile := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(authFile, []byte("mailer:s3cret-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	locked := mailtest.Start(t, "--smtp-auth-file", authFile, "--smtp-auth-allow-insecure")
	env := mail.Envelope{From: "no-reply@example.com", To: "ivan@example.com", Message: []byte("To: ivan@example.com\r\nSubject: x\r\n\r\nx\r\n")}
	anonymous, _ := mail.ParseSMTPURL("smtp://" + locked.SMTPAddr)
	if err := anonymous.Send(context.Background(), env); err == nil {
		t.Fatal("a server requiring AUTH took mail without it")
	}
	withCreds, err := mail.ParseSMTPURL("smtp://mailer:s3cret-pass@" + locked.SMTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := withCreds.Send(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	locked.WaitFor("ivan@example.com", 1)
}
