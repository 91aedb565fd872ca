// Package mail sends the service's mail: a module asks for a mail inside the transaction of
// the change that needs it (Outbox.Enqueue), and the Mailer renders it from templates
// embedded in the binary and sends it over SMTP, at least once, with retries, giving up
// after the last attempt. Mail is not a domain event: it lives in mail_outbox, which the
// event log, Kafka, webhooks and dead letters never read, and the token of its link is
// sealed there until it is sent. See docs/teams.md.
package mail

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	htmltemplate "html/template"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"net/textproto"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/secretbox"
)

// The templates, and the path of the web page each one's link opens (with ?token=).
const (
	Invitation        = "invitation"
	PasswordReset     = "password_reset"
	EmailVerification = "email_verification"
)

var linkPaths = map[string]string{
	Invitation:        "/accept-invitation",
	PasswordReset:     "/reset-password",
	EmailVerification: "/verify-email",
}

//go:embed templates
var templateFS embed.FS

// templateSet is one template's parts: "subject" and "text" in the text file, the HTML
// part in the html file.
type templateSet struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

var templates = func() map[string]templateSet {
	m := make(map[string]templateSet, len(linkPaths))
	for name := range linkPaths {
		m[name] = templateSet{
			text: texttemplate.Must(texttemplate.ParseFS(templateFS, "templates/"+name+".txt.tmpl")).Option("missingkey=error"),
			html: htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/"+name+".html.tmpl")).Option("missingkey=error"),
		}
	}
	return m
}()

// Request is a mail to send: a template, its recipient, what it shows besides the link (no
// secret: it is stored readable), and the token of the link (stored sealed).
type Request struct {
	Template string
	To       string
	Data     map[string]string
	Token    string
}

// Outbox writes mail requests in the caller's transaction, so a mail exists exactly when the
// change that asks for it does.
type Outbox struct {
	Clock   clock.Clock
	Secrets *secretbox.Box
}

// Enqueue writes r for tenantID in tx and answers the mail's id (its Message-ID's too).
func (o *Outbox) Enqueue(ctx context.Context, tx pgx.Tx, tenantID uuid.UUID, r Request) (uuid.UUID, error) {
	if _, ok := linkPaths[r.Template]; !ok {
		return uuid.Nil, fmt.Errorf("mail.enqueue: no template %q", r.Template)
	}
	id := uuid.Must(uuid.NewV7())
	sealed, err := o.Secrets.Seal([]byte(r.Token), aad(tenantID, id))
	if err != nil {
		return uuid.Nil, fmt.Errorf("mail.enqueue %s: %w", r.Template, err)
	}
	data, err := json.Marshal(r.Data)
	if err != nil {
		return uuid.Nil, fmt.Errorf("mail.enqueue %s: %w", r.Template, err)
	}
	now := o.Clock.Now()
	_, err = tx.Exec(ctx, `
		INSERT INTO mail_outbox (tenant_id, id, template, recipient, data, token_sealed, status, next_attempt_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7)`, tenantID, id, r.Template, r.To, data, sealed, now)
	if err != nil {
		return uuid.Nil, fmt.Errorf("mail.enqueue %s: %w", r.Template, err)
	}
	return id, nil
}

// aad binds a sealed token to its mail: copied into another row, it does not open.
func aad(tenantID, id uuid.UUID) []byte {
	return append(append([]byte("mail\x00"), tenantID[:]...), id[:]...)
}

// Envelope is one message ready for the wire.
type Envelope struct {
	From, To  string
	MessageID string // without the angle brackets
	Link      string // for the log sender only
	Subject   string
	Message   []byte // RFC 5322, CRLF line ends
}

// Sender delivers an envelope: SMTP, or the log in development.
type Sender interface {
	Send(ctx context.Context, e Envelope) error
}

// view is what the templates see.
type view struct {
	Tenant string
	Link   string
	Data   map[string]string
}

// composition is a mail as the mailer read it from its row.
type composition struct {
	id        uuid.UUID
	template  string
	to        string
	tenant    string
	token     string
	data      map[string]string
	createdAt time.Time
}

// compose renders c into an envelope. Every copy of one mail is the same message: the
// Message-ID comes from the mail's id and Date from its creation.
func compose(c composition, from netmail.Address, baseURL string) (Envelope, error) {
	set, ok := templates[c.template]
	if !ok {
		return Envelope{}, fmt.Errorf("no template %q", c.template)
	}
	link := strings.TrimRight(baseURL, "/") + linkPaths[c.template] + "?token=" + c.token
	v := view{Tenant: c.tenant, Link: link, Data: c.data}
	var subject, text, html bytes.Buffer
	if err := set.text.ExecuteTemplate(&subject, "subject", v); err != nil {
		return Envelope{}, fmt.Errorf("template %s: %w", c.template, err)
	}
	if err := set.text.ExecuteTemplate(&text, "text", v); err != nil {
		return Envelope{}, fmt.Errorf("template %s: %w", c.template, err)
	}
	if err := set.html.Execute(&html, v); err != nil {
		return Envelope{}, fmt.Errorf("template %s: %w", c.template, err)
	}
	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	e := Envelope{
		From: from.Address, To: c.to, Link: link,
		MessageID: c.id.String() + "@" + domain,
		// A tenant's name is the tenant's to choose: no line break of it reaches a header.
		Subject: strings.Join(strings.Fields(subject.String()), " "),
	}

	var msg bytes.Buffer
	mw := multipart.NewWriter(&msg)
	header := func(k, v string) { fmt.Fprintf(&msg, "%s: %s\r\n", k, v) }
	header("From", from.String())
	header("To", c.to)
	header("Subject", mime.QEncoding.Encode("utf-8", e.Subject))
	header("Date", c.createdAt.UTC().Format(time.RFC1123Z))
	header("Message-ID", "<"+e.MessageID+">")
	header("MIME-Version", "1.0")
	header("Content-Type", `multipart/alternative; boundary="`+mw.Boundary()+`"`)
	msg.WriteString("\r\n")
	for _, part := range []struct {
		typ  string
		body []byte
	}{{"text/plain; charset=utf-8", text.Bytes()}, {"text/html; charset=utf-8", html.Bytes()}} {
		pw, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.typ},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return Envelope{}, err
		}
		qp := quotedprintable.NewWriter(pw)
		qp.Write(part.body) // its line breaks go out as CRLF
		if err := qp.Close(); err != nil {
			return Envelope{}, err
		}
	}
	if err := mw.Close(); err != nil {
		return Envelope{}, err
	}
	e.Message = msg.Bytes()
	return e, nil
}
