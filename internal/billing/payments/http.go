// Package payments takes payments and refunds through Stripe, exactly once however often a
// request is retried or interrupted: phased idempotency keys with recovery points, keys sent
// to Stripe derived from ours, Stripe's webhooks applied once, and a completer for what a
// crash left half done. It also keeps each tenant's Stripe customer.
package payments

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/idempotency"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// Handler serves payments, refunds and Stripe's webhooks.
type Handler struct {
	Payments      *Payments
	WebhookSecret string // STRIPE_WEBHOOK_SECRET
}

// Routes mounts payments for the tenant's admins and Stripe's webhook for Stripe. Payments
// call Stripe: their keys are required and phased, and no transaction spans the call.
func (h *Handler) Routes(rs httpx.Routers, keys *idempotency.Middleware) {
	rs.Public.Method(http.MethodPost, "/v1/webhooks/stripe", httpx.HandlerFunc(h.StripeWebhook))
	rs.Member.Method(http.MethodGet, "/v1/payments", httpx.HandlerFunc(h.List))
	rs.Member.Method(http.MethodGet, "/v1/payments/{id}", httpx.HandlerFunc(h.Get))
	phased := rs.Admin.With(keys.Handler(idempotency.Options{Required: true, Phased: true}))
	phased.Method(http.MethodPost, "/v1/payments", httpx.HandlerFunc(h.Create))
	phased.Method(http.MethodPost, "/v1/payments/{id}/refunds", httpx.HandlerFunc(h.Refund))
}

// mustKey returns the request's claimed idempotency key; the route's middleware requires one.
func mustKey(r *http.Request) *idempotency.Key {
	k, ok := idempotency.FromContext(r.Context())
	if !ok {
		panic("payments: payment route without the phased idempotency middleware")
	}
	return k
}

// Create is POST /v1/payments.
func (h *Handler) Create(w http.ResponseWriter, r *http.Request) error {
	var in PaymentInput
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	p, err := h.Payments.Create(r.Context(), auth.TenantOf(r), in, mustKey(r))
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusCreated, p)
	return nil
}

// Get is GET /v1/payments/{id}.
func (h *Handler) Get(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	p, err := h.Payments.Get(r.Context(), auth.TenantOf(r), id)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, p)
	return nil
}

// List is GET /v1/payments.
func (h *Handler) List(w http.ResponseWriter, r *http.Request) error {
	page, err := httpx.ParsePage(r)
	if err != nil {
		return err
	}
	ps, err := h.Payments.List(r.Context(), auth.TenantOf(r), page)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.NewList(ps, page, func(p Payment) uuid.UUID { return p.ID }))
	return nil
}

// Refund is POST /v1/payments/{id}/refunds.
func (h *Handler) Refund(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	var in RefundInput
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	rf, err := h.Payments.Refund(r.Context(), auth.TenantOf(r), id, in, mustKey(r))
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusCreated, rf)
	return nil
}
