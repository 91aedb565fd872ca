package events

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// Handler serves the tenant's event log.
type Handler struct {
	Log *Log
}

// Routes mounts the event log for the tenant's members.
func (h *Handler) Routes(rs httpx.Routers) {
	rs.Member.Method(http.MethodGet, "/events", httpx.HandlerFunc(h.List))
}

// List is GET /v1/events: the tenant's own events, newest first.
func (h *Handler) List(w http.ResponseWriter, r *http.Request) error {
	page, err := httpx.ParsePage(r)
	if err != nil {
		return err
	}
	typ := r.URL.Query().Get("type")
	if len(typ) > 200 {
		return errs.Field("type", "must be at most 200 characters")
	}
	evs, err := h.Log.List(r.Context(), auth.TenantOf(r), typ, page)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.NewList(evs, page, func(e Event) uuid.UUID { return e.ID }))
	return nil
}
