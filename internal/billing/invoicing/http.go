package invoicing

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// Handler serves invoices.
type Handler struct {
	Invoices *Invoices
}

// Routes mounts the tenant's invoices, for its members.
func (h *Handler) Routes(rs httpx.Routers) {
	rs.Member.Method(http.MethodGet, "/invoices/upcoming", httpx.HandlerFunc(h.Upcoming))
	rs.Member.Method(http.MethodGet, "/invoices", httpx.HandlerFunc(h.List))
	rs.Member.Method(http.MethodGet, "/invoices/{id}", httpx.HandlerFunc(h.Get))
}

// Upcoming is GET /v1/invoices/upcoming.
func (h *Handler) Upcoming(w http.ResponseWriter, r *http.Request) error {
	inv, err := h.Invoices.Upcoming(r.Context(), auth.TenantOf(r))
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, inv)
	return nil
}

// List is GET /v1/invoices.
func (h *Handler) List(w http.ResponseWriter, r *http.Request) error {
	page, err := httpx.ParsePage(r)
	if err != nil {
		return err
	}
	invs, err := h.Invoices.List(r.Context(), auth.TenantOf(r), page)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.NewList(invs, page, func(i Invoice) uuid.UUID { return *i.ID }))
	return nil
}

// Get is GET /v1/invoices/{id}.
func (h *Handler) Get(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	inv, err := h.Invoices.Get(r.Context(), auth.TenantOf(r), id)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, inv)
	return nil
}
