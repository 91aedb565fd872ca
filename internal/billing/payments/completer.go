package payments

import (
	"context"
	"log/slog"
	"strings"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/idempotency"
	"github.com/saasbase/saasbase/internal/platform/errs"
)

// Completer finishes payments and refunds whose request stopped mid-way (a crash, a client
// that never retried after a 503), so that no PaymentIntent is left without its payment's
// outcome. It resumes each from its recovery point exactly as a retry would, then unlocks the
// key without storing an answer: the client's retry answers from the finished work. Several
// replicas may run it: a key is taken over under its row lock, one completer at a time.
type Completer struct {
	Payments *Payments
	Keys     *idempotency.Store
	Logger   *slog.Logger
}

// Run completes up to a batch of abandoned keys and answers how many it finished.
func (c *Completer) Run(ctx context.Context) (int, error) {
	if c.Payments.Stripe == nil {
		return 0, nil
	}
	reqs, err := c.Keys.Abandoned(ctx, "/v1/payments", 100)
	if err != nil {
		return 0, err
	}
	done := 0
	for _, req := range reqs {
		key, err := c.Keys.Resume(ctx, req)
		if err != nil {
			return done, err
		}
		if key == nil {
			continue // a live request holds it, or it finished meanwhile
		}
		if err := c.finish(ctx, req, key); err != nil && !IsOutcome(err) {
			c.Logger.WarnContext(ctx, "completer: not finished", slog.String("tenant_id", req.TenantID.String()), slog.String("error", err.Error()))
		}
		if err := c.Keys.Unlock(ctx, key); err != nil {
			return done, err
		}
		done++
	}
	return done, nil
}

// IsOutcome reports whether an error is a payment's final outcome (a decline, a rejection)
// rather than a failure to reach it.
func IsOutcome(err error) bool {
	k := errs.KindOf(err)
	return k == errs.PaymentFailed || k == errs.Invalid
}

func (c *Completer) finish(ctx context.Context, req idempotency.Request, key *idempotency.Key) error {
	path := key.Path()
	if path == "/v1/payments" {
		_, err := c.Payments.Create(ctx, req.TenantID, PaymentInput{}, key)
		return err
	}
	// /v1/payments/{id}/refunds
	id, err := uuid.Parse(strings.TrimSuffix(strings.TrimPrefix(path, "/v1/payments/"), "/refunds"))
	if err != nil {
		return err
	}
	_, err = c.Payments.Refund(ctx, req.TenantID, id, RefundInput{}, key)
	return err
}
