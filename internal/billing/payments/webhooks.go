package payments

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

var (
	errBadSignature   = errs.E(errs.Invalid, "validation_failed", "the Stripe-Signature header does not verify over the body, or its timestamp is older than 5 minutes")
	errNotLinkedYet   = errs.E(errs.Unavailable, "payment_provider_unavailable", "the PaymentIntent is not linked to its payment yet; Stripe will deliver the event again")
	errNoWebhookSetup = errs.E(errs.Unavailable, "payment_provider_unavailable", "Stripe webhooks are not configured on this server (STRIPE_WEBHOOK_SECRET is empty)")
)

// StripeWebhook is POST /v1/webhooks/stripe. The signature is checked first, over the raw
// body with a 5-minute tolerance, and only a verified body is parsed: a body that verifies
// is never answered as if it did not, and what does not verify is never read. A verified
// event that does not parse is a 400 saying so; one of a shape this service does not act on
// (a v2 thin event: no data.object) is a 200 and ignored, since Stripe retries anything else
// for days. stripe-go v76 pins API version 2023-10-16 and by default refuses events of any
// other version; an account's webhook endpoint may be on another, so the version is not
// checked and only fields stable across versions are read (ids, statuses, amounts, metadata).
func (h *Handler) StripeWebhook(w http.ResponseWriter, r *http.Request) error {
	if h.WebhookSecret == "" {
		return errNoWebhookSetup
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, httpx.MaxBody+1))
	if err != nil {
		return err
	}
	if len(body) > httpx.MaxBody {
		return errs.E(errs.TooLarge, "payload_too_large", "the event is larger than %d bytes", httpx.MaxBody)
	}
	if err := webhook.ValidatePayloadWithTolerance(body, r.Header.Get("Stripe-Signature"), h.WebhookSecret, 5*time.Minute); err != nil {
		return errBadSignature
	}
	ev, ok, err := parseEvent(body)
	if err != nil {
		return err
	}
	if ok {
		if err := h.Payments.ApplyEvent(r.Context(), ev); err != nil {
			return err
		}
	}
	httpx.JSON(w, http.StatusOK, map[string]bool{"received": true})
	return nil
}

// parseEvent reads a verified body: ok is false for an event of a shape this service does
// not act on, and the error a validation_failed for a body that does not parse. A v1
// snapshot event ("object": "event") carries its object in data.object; a v2 thin event
// ("object": "v2.core.event") carries none, and its created is a string that stripe.Event,
// an integer there, could not take, so the shape is looked at before the event is decoded.
func parseEvent(body []byte) (ev stripe.Event, ok bool, err error) {
	var shape struct {
		Object string `json:"object"`
		Data   struct {
			Object json.RawMessage `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &shape); err != nil {
		return ev, false, notParsing(err)
	}
	if shape.Object != "event" || len(shape.Data.Object) == 0 || string(shape.Data.Object) == "null" {
		return ev, false, nil
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return ev, false, notParsing(err)
	}
	return ev, true, nil
}

func notParsing(err error) error {
	return errs.E(errs.Invalid, "validation_failed", "the event verifies but does not parse as a Stripe event: %v", err)
}

// ApplyEvent makes a Stripe event take effect, once: its id is recorded in the transaction
// of its effect, and a duplicate delivery finds it there and does nothing.
func (s *Payments) ApplyEvent(ctx context.Context, ev stripe.Event) error {
	switch ev.Type {
	case "payment_intent.succeeded", "payment_intent.processing", "payment_intent.canceled",
		"payment_intent.payment_failed", "payment_intent.requires_action":
		var pi stripe.PaymentIntent
		if err := json.Unmarshal(ev.Data.Raw, &pi); err != nil {
			return errs.Field("data.object", "is not a PaymentIntent")
		}
		status, failure := intentStatus(pi.Status), (*string)(nil)
		if ev.Type == "payment_intent.payment_failed" {
			status = StatusFailed
			if e := pi.LastPaymentError; e != nil {
				failure = optional(string(e.Code))
			}
		}
		return s.applyIntent(ctx, ev, pi.ID, pi.Metadata, func(ctx context.Context, tx pgx.Tx, tenantID uuid.UUID, p Payment) error {
			if !movable(p.Status, status) {
				return nil // a late or stale event: statuses only move forward
			}
			return s.setOutcome(ctx, tx, tenantID, p.ID, nil, status, failure)
		})
	case "charge.refunded":
		// A refund made outside this service (the dashboard): take Stripe's refunded total.
		var ch stripe.Charge
		if err := json.Unmarshal(ev.Data.Raw, &ch); err != nil || ch.PaymentIntent == nil {
			return errs.Field("data.object", "is not a Charge of a PaymentIntent")
		}
		return s.applyIntent(ctx, ev, ch.PaymentIntent.ID, ch.Metadata, func(ctx context.Context, tx pgx.Tx, tenantID uuid.UUID, p Payment) error {
			if ch.AmountRefunded <= p.AmountRefunded || p.Status != StatusSucceeded {
				return nil
			}
			p, err := scanPayment(tx.QueryRow(ctx, `
				UPDATE payments SET amount_refunded = least($2, amount),
				       status = CASE WHEN $2 >= amount THEN 'refunded' ELSE status END, updated_at = $3
				 WHERE id = $1 RETURNING `+paymentColumns, p.ID, ch.AmountRefunded, s.Clock.Now()))
			if err != nil {
				return err
			}
			return s.emit(ctx, tx, tenantID, p)
		})
	}
	return nil // an event this service does not act on
}

// applyIntent finds the payment of a PaymentIntent through the named cross-tenant lookup
// (metadata is not trusted to choose a tenant) and runs apply on it in that tenant's
// transaction, together with the record of the event.
func (s *Payments) applyIntent(ctx context.Context, ev stripe.Event, intentID string, metadata map[string]string,
	apply func(context.Context, pgx.Tx, uuid.UUID, Payment) error) error {
	rows, _ := s.DB.Pool.Query(ctx, "SELECT tenant_id, payment_id FROM app.payment_by_intent($1)", intentID)
	found, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Tenant, Payment uuid.UUID }])
	if err != nil {
		return err
	}
	if len(found) != 1 {
		if metadata["payment_id"] != "" {
			// Ours, but the PaymentIntent's id is not stored yet (the event raced our own
			// commit): a non-2xx makes Stripe deliver it again later.
			return errNotLinkedYet
		}
		return nil // not a payment of this service
	}
	tenantID, paymentID := found[0].Tenant, found[0].Payment
	err = s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "INSERT INTO stripe_events (event_id, type, processed_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
			ev.ID, string(ev.Type), s.Clock.Now())
		if err != nil || tag.RowsAffected() == 0 {
			return err // a duplicate delivery: it took effect already
		}
		p, err := scanPayment(tx.QueryRow(ctx, "SELECT "+paymentColumns+" FROM payments WHERE id = $1 FOR UPDATE", paymentID))
		if err != nil {
			return err
		}
		return apply(ctx, tx, tenantID, p)
	})
	if err != nil {
		return fmt.Errorf("payments.apply_event %s to payment %s: %w", ev.ID, paymentID, err)
	}
	return nil
}
