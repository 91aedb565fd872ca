package payments

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/idempotency"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Refund gives back all or part of a succeeded payment.
type Refund struct {
	ID             uuid.UUID `json:"id"`
	PaymentID      uuid.UUID `json:"payment_id"`
	Amount         int64     `json:"amount"`
	Status         string    `json:"status"`
	StripeRefundID *string   `json:"stripe_refund_id"`
	CreatedAt      time.Time `json:"created_at"`
}

// RefundInput is the body of POST /v1/payments/{id}/refunds.
type RefundInput struct {
	Amount *int64 `json:"amount"` // default: what is left to refund
}

// Validate checks the amount.
func (in RefundInput) Validate() error {
	if in.Amount != nil && *in.Amount < 1 {
		return errs.Field("amount", "must be a positive amount in minor units")
	}
	return nil
}

const (
	pointRefundCreated = "refund_created" // the refund row exists and its amount is reserved
	refundPending      = "pending"
	refundSucceeded    = "succeeded"
	refundFailed       = "failed"
)

type refundProgress struct {
	RefundID uuid.UUID `json:"refund_id"`
	Rejected string    `json:"rejected,omitempty"`
}

// Refund runs, or resumes, a refund in phases like Create. The first phase locks the payment
// and reserves the amount against what was paid, counting refunds still pending, so no mix of
// concurrent or retried refunds can ever give back more than was paid.
func (s *Payments) Refund(ctx context.Context, tenantID, paymentID uuid.UUID, in RefundInput, key *idempotency.Key) (Refund, error) {
	if s.Stripe == nil {
		return Refund{}, ErrPaymentsDisabled
	}
	var pr refundProgress
	if err := key.RecoveryData(&pr); err != nil {
		return Refund{}, err
	}
	if key.RecoveryPoint() == idempotency.Started {
		pr.RefundID = uuid.Must(uuid.NewV7())
		err := key.Advance(ctx, pointRefundCreated, pr, func(tx pgx.Tx) error {
			return s.reserveRefund(ctx, tx, tenantID, paymentID, pr.RefundID, in.Amount)
		})
		if err != nil {
			return Refund{}, fmt.Errorf("payments.refund %s of payment %s: %w", pr.RefundID, paymentID, err)
		}
	}
	if key.RecoveryPoint() == pointRefundCreated {
		if err := s.sendRefund(ctx, tenantID, key, &pr); err != nil {
			return Refund{}, fmt.Errorf("payments.refund %s of payment %s: send: %w", pr.RefundID, paymentID, err)
		}
	}
	r, err := s.getRefund(ctx, tenantID, pr.RefundID)
	if err == nil && pr.Rejected != "" {
		err = errs.Field("amount", pr.Rejected)
	}
	return r, err
}

func (s *Payments) reserveRefund(ctx context.Context, tx pgx.Tx, tenantID, paymentID, refundID uuid.UUID, amount *int64) error {
	var status string
	var paid, refunded, pending int64
	err := tx.QueryRow(ctx, `
		SELECT p.status, p.amount, p.amount_refunded,
		       coalesce((SELECT sum(r.amount) FROM refunds r WHERE r.payment_id = p.id AND r.status = 'pending'), 0)
		  FROM payments p WHERE p.id = $1 FOR UPDATE`, paymentID).Scan(&status, &paid, &refunded, &pending)
	if postgres.IsNoRows(err) {
		return errs.NotFoundf("no such payment")
	}
	if err != nil {
		return err
	}
	if status != StatusSucceeded {
		return errs.E(errs.Conflict, "conflict", "only a succeeded payment can be refunded; this one is %s", status)
	}
	left := paid - refunded - pending
	n := left
	if amount != nil {
		n = *amount
	}
	if n < 1 || n > left {
		return errs.Field("amount", "exceeds what is left to refund of this payment")
	}
	now := s.Clock.Now()
	_, err = tx.Exec(ctx, `
		INSERT INTO refunds (tenant_id, id, payment_id, amount, status, created_at, updated_at)
		VALUES ($1, $2, $3, $4, 'pending', $5, $5)`, tenantID, refundID, paymentID, n, now)
	return err
}

// sendRefund asks Stripe for the refund and stores the outcome: the amount moves from
// pending to refunded, and a payment refunded in full becomes refunded.
func (s *Payments) sendRefund(ctx context.Context, tenantID uuid.UUID, key *idempotency.Key, pr *refundProgress) error {
	r, err := s.getRefund(ctx, tenantID, pr.RefundID)
	if err != nil {
		return err
	}
	pay, err := s.Get(ctx, tenantID, r.PaymentID)
	if err != nil {
		return err
	}
	sr, err := s.Stripe.CreateRefund(ctx, stripeKey("re", key), deref(pay.PaymentIntentID), r.Amount, r.ID.String())
	outcome := refundSucceeded
	var stripeID *string
	switch {
	case errs.KindOf(err) == errs.Invalid:
		outcome, pr.Rejected = refundFailed, "the payment provider refused the refund"
	case err != nil:
		return err // unavailable: resumed by a retry or the completer
	case sr.Status == "failed" || sr.Status == "canceled":
		outcome, pr.Rejected = refundFailed, "the payment provider could not make the refund ("+string(sr.Status)+")"
		stripeID = &sr.ID
	default:
		stripeID = &sr.ID
	}
	return key.Advance(ctx, pointFinished, pr, func(tx pgx.Tx) error {
		now := s.Clock.Now()
		if _, err := tx.Exec(ctx, "UPDATE refunds SET status = $2, stripe_refund_id = $3, updated_at = $4 WHERE id = $1",
			r.ID, outcome, stripeID, now); err != nil {
			return err
		}
		if outcome != refundSucceeded {
			return nil
		}
		// The refunded total is the sum of our succeeded refunds, or what a charge.refunded
		// webhook reported if that is more: never this refund added on top of a webhook that
		// already counted it.
		p, err := scanPayment(tx.QueryRow(ctx, `
			UPDATE payments p SET amount_refunded = least(p.amount, greatest(p.amount_refunded,
			           (SELECT coalesce(sum(r.amount), 0) FROM refunds r WHERE r.payment_id = p.id AND r.status = 'succeeded'))),
			       updated_at = $2
			 WHERE p.id = $1 RETURNING `+paymentColumns, r.PaymentID, now))
		if err != nil {
			return err
		}
		p, err = scanPayment(tx.QueryRow(ctx, `
			UPDATE payments SET status = CASE WHEN amount_refunded = amount AND status = 'succeeded' THEN 'refunded' ELSE status END
			 WHERE id = $1 RETURNING `+paymentColumns, p.ID))
		if err != nil {
			return err
		}
		r.Status, r.StripeRefundID = outcome, stripeID
		if err := s.Outbox.Append(ctx, tx, tenantID, "refund.succeeded", r); err != nil {
			return err
		}
		return s.emit(ctx, tx, tenantID, p)
	})
}

func scanRefund(row pgx.Row) (Refund, error) {
	var r Refund
	err := row.Scan(&r.ID, &r.PaymentID, &r.Amount, &r.Status, &r.StripeRefundID, &r.CreatedAt)
	if postgres.IsNoRows(err) {
		return Refund{}, errs.NotFoundf("no such refund")
	}
	r.CreatedAt = r.CreatedAt.UTC()
	return r, err
}

func (s *Payments) getRefund(ctx context.Context, tenantID, id uuid.UUID) (Refund, error) {
	r, err := postgres.ReadRow(ctx, s.DB, tenantID, scanRefund,
		"SELECT id, payment_id, amount, status, stripe_refund_id, created_at FROM refunds WHERE id = $1", id)
	if err != nil {
		return Refund{}, fmt.Errorf("refunds.get %s: %w", id, err)
	}
	return r, nil
}
