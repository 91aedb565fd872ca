package server

import (
	"fmt"
	netmail "net/mail"

	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/mail"
	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/platform/secretbox"
	"github.com/saasbase/saasbase/internal/tenant"
)

// teams builds the mailer (a.Mailer) and the services that mail: invitations, password
// resets and email verification.
func (a *App) teams(cfg config.Config, outbox *events.Outbox, secrets *secretbox.Box) (*tenant.Invitations, *tenant.Recovery, error) {
	from, err := netmail.ParseAddress(cfg.MailFrom)
	if err != nil {
		return nil, nil, fmt.Errorf("MAIL_FROM: %w", err)
	}
	var sender mail.Sender = mail.Log{Logger: a.Logger, WithLink: !cfg.Production()}
	if cfg.SMTPURL == "" && cfg.Production() {
		a.Logger.Warn("SMTP_URL is not set: invitations, password resets and verifications are logged, not mailed")
	}
	if cfg.SMTPURL != "" {
		smtp, err := mail.ParseSMTPURL(cfg.SMTPURL)
		if err != nil {
			return nil, nil, fmt.Errorf("SMTP_URL %w", err)
		}
		sender = smtp
	}
	a.Mailer = &mail.Mailer{
		DB: a.DB, Clock: a.Clock, Secrets: secrets, Sender: sender, From: *from, BaseURL: cfg.AppBaseURL,
		Metrics: mail.NewMetrics(a.Registry), Logger: a.Logger,
	}
	queue := &mail.Outbox{Clock: a.Clock, Secrets: secrets}
	invitations := &tenant.Invitations{
		DB: a.DB, Outbox: outbox, Mail: queue, Sessions: a.Sessions, Passwords: a.Passwords, Clock: a.Clock,
	}
	recovery := &tenant.Recovery{
		DB: a.DB, Outbox: outbox, Mail: queue, Sessions: a.Sessions, Passwords: a.Passwords, Clock: a.Clock,
	}
	return invitations, recovery, nil
}
