package mail

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	netmail "net/mail"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/secretbox"
)

// DefaultSchedule is the pause after each failed attempt: 10 attempts over about 8 hours,
// then the mail is given up on (status dead, its token forgotten).
func DefaultSchedule() []time.Duration {
	return []time.Duration{
		5 * time.Second, 30 * time.Second, 2 * time.Minute, 5 * time.Minute, 15 * time.Minute,
		30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour,
	}
}

// Mailer sends pending mail. It claims due mail across tenants (a lease: a claim not
// recorded in time lapses and another replica sends the mail again, with the same
// Message-ID), renders and sends each, and records the attempt in the tenant's transaction.
// Sending is at least once: a crash between the server's acceptance and the record sends
// the mail again.
type Mailer struct {
	DB      *postgres.DB
	Clock   clock.Clock
	Secrets *secretbox.Box
	Sender  Sender
	From    netmail.Address // MAIL_FROM
	BaseURL string          // APP_BASE_URL: where links point
	Metrics *Metrics
	Logger  *slog.Logger

	Schedule    []time.Duration // pauses after each failed attempt (DefaultSchedule)
	Concurrency int             // mail in flight (8)
	Interval    time.Duration   // pause when nothing is due (1s)
	Lease       time.Duration   // how long a claim holds (2m: longer than an attempt may take)
}

func (m *Mailer) logger() *slog.Logger {
	if m.Logger == nil {
		return slog.Default()
	}
	return m.Logger
}

func (m *Mailer) concurrency() int {
	if m.Concurrency <= 0 {
		return 8
	}
	return m.Concurrency
}

func (m *Mailer) schedule() []time.Duration {
	if m.Schedule == nil {
		return DefaultSchedule()
	}
	return m.Schedule
}

// Run sends mail until ctx ends.
func (m *Mailer) Run(ctx context.Context) {
	interval := m.Interval
	if interval <= 0 {
		interval = time.Second
	}
	for ctx.Err() == nil {
		n, err := m.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			m.logger().ErrorContext(ctx, "mail round failed", slog.String("error", err.Error()))
		}
		if err == nil && n == m.concurrency() {
			continue // a full claim: more may be due
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}

// RunOnce claims the due mail (up to Concurrency), sends it, and answers how much.
func (m *Mailer) RunOnce(ctx context.Context) (int, error) {
	lease := m.Lease
	if lease <= 0 {
		lease = 2 * time.Minute
	}
	rows, _ := m.DB.Pool.Query(ctx, "SELECT tenant_id, mail_id FROM app.claim_mail($1, $2, $3)",
		m.Clock.Now(), lease, m.concurrency())
	claims, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (c claim, err error) {
		err = r.Scan(&c.tenant, &c.mail)
		return c, err
	})
	if err != nil {
		return 0, fmt.Errorf("mail.claim: %w", err)
	}
	var wg sync.WaitGroup
	for _, c := range claims {
		wg.Go(func() {
			if err := m.send(ctx, c); err != nil && ctx.Err() == nil {
				m.logger().ErrorContext(ctx, "mail attempt not recorded; it will be sent again",
					slog.String("tenant_id", c.tenant.String()), slog.String("mail_id", c.mail.String()),
					slog.String("error", err.Error()))
			}
		})
	}
	wg.Wait()
	return len(claims), nil
}

type claim struct {
	tenant, mail uuid.UUID
}

// send makes one attempt at a claimed mail and records it.
func (m *Mailer) send(ctx context.Context, c claim) error {
	var (
		comp     composition
		sealed   []byte
		data     []byte
		status   string
		attempts int
	)
	b := &pgx.Batch{}
	b.Queue(`SELECT m.template, m.recipient, m.data, m.token_sealed, m.status, m.attempts, m.created_at, t.name
	           FROM mail_outbox m JOIN tenants t ON t.id = m.tenant_id WHERE m.id = $1`, c.mail).
		QueryRow(func(row pgx.Row) error {
			return row.Scan(&comp.template, &comp.to, &data, &sealed, &status, &attempts, &comp.createdAt, &comp.tenant)
		})
	if err := m.DB.InTenantRead(ctx, c.tenant, b); err != nil {
		return fmt.Errorf("mail.read %s: %w", c.mail, err)
	}
	if status != "pending" {
		return nil // sent or given up on by another replica whose claim had lapsed
	}
	comp.id = c.mail
	env, err := m.render(c, comp, sealed, data)
	if err == nil {
		start := time.Now()
		err = m.Sender.Send(ctx, env)
		m.Metrics.observe(comp.template, err, time.Since(start))
		if err != nil && ctx.Err() != nil {
			return err // stopping: the claim lapses and the mail goes out later
		}
	}
	now := m.Clock.Now()
	if err == nil {
		return m.record(ctx, c, `UPDATE mail_outbox SET status = 'sent', sent_at = $2, attempts = attempts + 1,
		                         token_sealed = NULL, last_error = NULL WHERE id = $1 AND status = 'pending'`, now)
	}
	failures := attempts + 1
	sched := m.schedule()
	log := m.logger().With(slog.String("tenant_id", c.tenant.String()), slog.String("mail_id", c.mail.String()),
		slog.String("template", comp.template), slog.Int("attempt", failures), slog.String("error", err.Error()))
	if failures > len(sched) {
		log.ErrorContext(ctx, "mail given up on")
		m.Metrics.dead(comp.template)
		return m.record(ctx, c, `UPDATE mail_outbox SET status = 'dead', attempts = $2, last_error = $3,
		                         token_sealed = NULL WHERE id = $1 AND status = 'pending'`, failures, truncate(err.Error(), 2000))
	}
	log.WarnContext(ctx, "mail not sent; it will be tried again")
	return m.record(ctx, c, `UPDATE mail_outbox SET attempts = $3, last_error = $4, next_attempt_at = $2
	                         WHERE id = $1 AND status = 'pending'`, now.Add(sched[failures-1]), failures, truncate(err.Error(), 2000))
}

func (m *Mailer) record(ctx context.Context, c claim, q string, args ...any) error {
	err := m.DB.InTenantTx(ctx, c.tenant, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, q, append([]any{c.mail}, args...)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("mail.record %s: %w", c.mail, err)
	}
	return nil
}

// render opens the token and composes the message.
func (m *Mailer) render(c claim, comp composition, sealed, data []byte) (Envelope, error) {
	if err := json.Unmarshal(data, &comp.data); err != nil {
		return Envelope{}, fmt.Errorf("mail data: %w", err)
	}
	token, err := m.Secrets.Open(sealed, aad(c.tenant, c.mail))
	if err != nil {
		return Envelope{}, fmt.Errorf("mail token: %w", err)
	}
	comp.token = string(token)
	return compose(comp, m.From, m.BaseURL)
}

// Keep is how long mail sent or given up on, and expired user tokens, are kept (for an
// operator's questions: was it sent, when, how many attempts) before Reap deletes them.
const Keep = 30 * 24 * time.Hour

// Reap deletes mail sent or given up on, and user tokens expired, more than Keep ago, a
// batch at a time until a batch falls short; pending mail is never deleted. It is a job.
func (m *Mailer) Reap(ctx context.Context) (int, error) {
	n, err := m.DB.Reap(ctx, "app.reap_mail", m.Clock.Now().Add(-Keep), 0)
	if err != nil {
		return n, fmt.Errorf("mail.reap: %w", err)
	}
	return n, nil
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// Log is the Sender without SMTP_URL: it writes each mail to the log instead, link included
// in development (so `make run` works with nothing else), never in production, where the
// link's token is a credential.
type Log struct {
	Logger   *slog.Logger
	WithLink bool
}

// Send logs e.
func (l Log) Send(ctx context.Context, e Envelope) error {
	attrs := []any{slog.String("to", e.To), slog.String("subject", e.Subject), slog.String("message_id", e.MessageID)}
	if l.WithLink {
		attrs = append(attrs, slog.String("link", e.Link))
	}
	l.Logger.InfoContext(ctx, "mail not sent: SMTP_URL is not set", attrs...)
	return nil
}
