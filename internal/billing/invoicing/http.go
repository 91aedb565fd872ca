package invoicing

import (
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// Handler serves invoices.
type Handler struct {
	Invoices *Invoices
}

// Routes mounts the tenant's invoices, for its members, and the periods the closer could not
// finalize, for operators.
func (h *Handler) Routes(rs httpx.Routers) {
	rs.Member.Method(http.MethodGet, "/v1/invoices/upcoming", httpx.HandlerFunc(h.Upcoming))
	rs.Member.Method(http.MethodGet, "/v1/invoices", httpx.HandlerFunc(h.List))
	rs.Member.Method(http.MethodGet, "/v1/invoices/{id}", httpx.HandlerFunc(h.Get))
	rs.Operator.Method(http.MethodGet, "/v1/admin/billing/failing-periods", httpx.HandlerFunc(h.FailingPeriods))
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

// FailingPeriods is GET /v1/admin/billing/failing-periods: every tenant's billing periods
// that the closer has failed to finalize, the most recent failure first, one page of up to
// limit (default 100, at most 1000).
func (h *Handler) FailingPeriods(w http.ResponseWriter, r *http.Request) error {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return errs.Field("limit", "must be an integer from 1 to 1000")
		}
		limit = n
	}
	ps, err := h.Invoices.Failing(r.Context(), limit)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.List[FailingPeriod]{Data: ps})
	return nil
}
