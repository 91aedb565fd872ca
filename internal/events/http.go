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

// adminOnlyTypes are the type prefixes of events that only admins may read: each family
// describes a resource whose routes are admin-only, and carries what they alone reveal.
//
//	user.*             /v1/users (tenant/http.go): emails and roles
//	api_key.*          /v1/api-keys (auth/http.go)
//	webhook_endpoint.* /v1/webhook-endpoints (events/webhook/http.go): receivers' URLs
//	invitation.*       /v1/invitations: invitees' emails and roles
//
// tenant.* is not among them: it carries the tenant that GET /v1/tenant shows every member
// (only changing it is for admins). A resource made admin-only adds its family here.
var adminOnlyTypes = []string{"user.", "api_key.", "webhook_endpoint.", "invitation."}

// hiddenFrom answers the type prefixes of the events that role may not read.
func hiddenFrom(role auth.Role) []string {
	if role.AtLeast(auth.RoleAdmin) {
		return nil
	}
	return adminOnlyTypes
}

// List is GET /v1/events: the tenant's own events, newest first, of the types the caller may
// read. The others are left out rather than refused, in the query, so every page is full.
func (h *Handler) List(w http.ResponseWriter, r *http.Request) error {
	page, err := httpx.ParsePage(r)
	if err != nil {
		return err
	}
	q := Query{Type: r.URL.Query().Get("type"), Hide: hiddenFrom(auth.MustFromContext(r.Context()).Role)}
	if len(q.Type) > 200 {
		return errs.Field("type", "must be at most 200 characters")
	}
	evs, err := h.Log.List(r.Context(), auth.TenantOf(r), q, page)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.NewList(evs, page, func(e Event) uuid.UUID { return e.ID }))
	return nil
}
