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
	rs.Member.Method(http.MethodGet, "/v1/events", httpx.HandlerFunc(h.List))
}

// memberTypes are the type prefixes of the events every member may read: each family
// describes a resource that members may read through its own routes.
//
//	project.*  tenant.*  flag.*  meter.*  plan.*  usage.*  invoice.*  payment.*  refund.*
//
// Every other family is for admins: user.* (emails and roles), api_key.*,
// webhook_endpoint.* (receivers' URLs), invitation.* (invitees' emails), and whatever family
// is added next, until someone decides members may read it and lists it here. An allow-list,
// so that forgetting a new family hides it rather than shows it.
var memberTypes = []string{"project.", "tenant.", "flag.", "meter.", "plan.", "usage.", "invoice.", "payment.", "refund."}

// readableBy answers the type prefixes of the events role may read; nil: every event.
func readableBy(role auth.Role) []string {
	if role.AtLeast(auth.RoleAdmin) {
		return nil
	}
	return memberTypes
}

// List is GET /v1/events: the tenant's own events, newest first, of the types the caller may
// read. The others are left out rather than refused, in the query, so every page is full.
func (h *Handler) List(w http.ResponseWriter, r *http.Request) error {
	page, err := httpx.ParsePage(r)
	if err != nil {
		return err
	}
	q := Query{Type: r.URL.Query().Get("type"), Only: readableBy(auth.MustFromContext(r.Context()).Role)}
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
