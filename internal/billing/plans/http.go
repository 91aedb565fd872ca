package plans

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// Handler serves the plans catalog.
type Handler struct {
	Plans *Plans
}

// Routes mounts the catalog: anyone may read it, operators change it.
func (h *Handler) Routes(rs httpx.Routers) {
	rs.Public.Method(http.MethodGet, "/v1/plans", httpx.HandlerFunc(h.List))
	rs.Operator.Method(http.MethodPut, "/v1/admin/plans/{code}", httpx.HandlerFunc(h.Put))
}

// List is GET /v1/plans: public, one page.
func (h *Handler) List(w http.ResponseWriter, r *http.Request) error {
	plans, err := h.Plans.List(r.Context())
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.List[Plan]{Data: plans})
	return nil
}

// Put is PUT /v1/admin/plans/{code}: 201 when created, 200 when replaced.
func (h *Handler) Put(w http.ResponseWriter, r *http.Request) error {
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
