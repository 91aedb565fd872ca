package billing

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/idempotency"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// Handler serves the plans catalog.
type Handler struct {
	Plans *Plans
}

// ListPlans is GET /v1/plans: public, one page.
func (h *Handler) ListPlans(w http.ResponseWriter, r *http.Request) error {
	plans, err := h.Plans.List(r.Context())
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.List[Plan]{Data: plans})
	return nil
}

// PutPlan is PUT /v1/admin/plans/{code}: 201 when created, 200 when replaced.
func (h *Handler) PutPlan(w http.ResponseWriter, r *http.Request) error {
	var in PlanInput
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	p, created, err := h.Plans.Put(r.Context(), chi.URLParam(r, "code"), in)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpx.JSON(w, status, p)
	return nil
}

// PaymentsHandler serves payments and refunds.
type PaymentsHandler struct {
	Payments *Payments
}

func tenantOf(r *http.Request) uuid.UUID { return auth.MustFromContext(r.Context()).TenantID }

// mustKey returns the request's claimed idempotency key; the route's middleware requires one.
func mustKey(r *http.Request) *idempotency.Key {
	k, ok := idempotency.FromContext(r.Context())
	if !ok {
		panic("billing: payment route without the phased idempotency middleware")
	}
	return k
}

// Create is POST /v1/payments.
func (h *PaymentsHandler) Create(w http.ResponseWriter, r *http.Request) error {
	var in PaymentInput
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	p, err := h.Payments.Create(r.Context(), tenantOf(r), in, mustKey(r))
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusCreated, p)
	return nil
}

// Get is GET /v1/payments/{id}.
func (h *PaymentsHandler) Get(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	p, err := h.Payments.Get(r.Context(), tenantOf(r), id)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, p)
	return nil
}

// List is GET /v1/payments.
func (h *PaymentsHandler) List(w http.ResponseWriter, r *http.Request) error {
	page, err := httpx.ParsePage(r)
	if err != nil {
		return err
	}
	ps, err := h.Payments.List(r.Context(), tenantOf(r), page)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.NewList(ps, page, func(p Payment) uuid.UUID { return p.ID }))
	return nil
}

// Refund is POST /v1/payments/{id}/refunds.
func (h *PaymentsHandler) Refund(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	var in RefundInput
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	rf, err := h.Payments.Refund(r.Context(), tenantOf(r), id, in, mustKey(r))
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusCreated, rf)
	return nil
}
