package billing

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// InvoicesHandler serves invoices and entitlements.
type InvoicesHandler struct {
	Invoices *Invoices
}

// Upcoming is GET /v1/invoices/upcoming.
func (h *InvoicesHandler) Upcoming(w http.ResponseWriter, r *http.Request) error {
	inv, err := h.Invoices.Upcoming(r.Context(), tenantOf(r))
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, inv)
	return nil
}

// List is GET /v1/invoices.
func (h *InvoicesHandler) List(w http.ResponseWriter, r *http.Request) error {
	page, err := httpx.ParsePage(r)
	if err != nil {
		return err
	}
	invs, err := h.Invoices.List(r.Context(), tenantOf(r), page)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.NewList(invs, page, func(i Invoice) uuid.UUID { return *i.ID }))
	return nil
}

// Get is GET /v1/invoices/{id}.
func (h *InvoicesHandler) Get(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	inv, err := h.Invoices.Get(r.Context(), tenantOf(r), id)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, inv)
	return nil
}

// Entitlements is GET /v1/entitlements.
func (h *InvoicesHandler) Entitlements(w http.ResponseWriter, r *http.Request) error {
	es, err := h.Invoices.Entitlements(r.Context(), tenantOf(r))
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"data": es})
	return nil
}
