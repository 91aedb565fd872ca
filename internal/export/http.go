package export

import (
	"net/http"
	"strconv"

	"github.com/saasbase/saasbase/internal/audit"
	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// Handler serves a tenant's exports to its owners.
type Handler struct {
	Exports *Exports
}

// Routes mounts the export routes. They stay open while the tenant is pending deletion
// (tenant.Directory), so that a leaving tenant can take its data.
func (h *Handler) Routes(rs httpx.Routers) {
	owner := rs.Member.With(auth.RequireRole(auth.RoleOwner))
	owner.Method(http.MethodPost, "/v1/tenant/exports", httpx.HandlerFunc(h.Create))
	owner.Method(http.MethodGet, "/v1/tenant/exports/{id}", httpx.HandlerFunc(h.Get))
	owner.Method(http.MethodGet, "/v1/tenant/exports/{id}/download", httpx.HandlerFunc(h.Download))
}

// Create is POST /v1/tenant/exports: 202 with the pending export, which starts once the
// request has committed.
func (h *Handler) Create(w http.ResponseWriter, r *http.Request) error {
	p := auth.MustFromContext(r.Context())
	e, err := h.Exports.Create(r.Context(), p.TenantID, p.ID.String())
	if err != nil {
		return err
	}
	audit.AfterCommit(r.Context(), h.Exports.Start)
	w.Header().Set("Location", "/v1/tenant/exports/"+e.ID.String())
	httpx.JSON(w, http.StatusAccepted, e)
	return nil
}

// Get is GET /v1/tenant/exports/{id}.
func (h *Handler) Get(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	e, err := h.Exports.Get(r.Context(), auth.TenantOf(r), id)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, e)
	return nil
}

// Download is GET /v1/tenant/exports/{id}/download: the archive, streamed.
func (h *Handler) Download(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	started := false
	err = h.Exports.Download(r.Context(), auth.TenantOf(r), id, func(e Export) {
		started = true
		hd := w.Header()
		hd.Set("Content-Type", "application/gzip")
		hd.Set("Content-Disposition", `attachment; filename="export-`+e.ID.String()+`.tar.gz"`)
		if e.SizeBytes != nil {
			hd.Set("Content-Length", strconv.FormatInt(*e.SizeBytes, 10))
		}
		w.WriteHeader(http.StatusOK)
	}, w)
	if err != nil && started {
		// The status is sent: all that is left is to cut the answer short, which the
		// client sees as a body shorter than Content-Length.
		panic(http.ErrAbortHandler)
	}
	return err
}
