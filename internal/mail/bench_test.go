package mail_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/mail"
)

// BenchmarkMailerToMailpit is the mailer's throughput to a loopback SMTP server (Mailpit):
// each op is one mail enqueued, claimed, rendered, sent over SMTP (a connection per mail)
// and recorded, 8 in flight.
func BenchmarkMailerToMailpit(b *testing.B) {
	f := newFixture(b, "Bench")
	m := f.mailer(f.smtp(f.mp.SMTPAddr))
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		err := f.db.InTenantTx(ctx, f.tenant, func(tx pgx.Tx) error {
			_, err := f.queue.Enqueue(ctx, tx, f.tenant, mail.Request{Template: mail.Invitation, To: "bench@example.com", Token: "inv_x",
				Data: map[string]string{"inviter": "a@example.com", "role": "member", "expires_at": "soon"}})
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	for sent := 0; sent < b.N; {
		n, err := m.RunOnce(ctx)
		if err != nil || n == 0 {
			b.Fatalf("%d of %d sent: %v", sent, b.N, err)
		}
		sent += n
	}
}
