package audit

import (
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// Handler serves a tenant's audit log to its admins.
type Handler struct {
	Log *Log
}

// Routes mounts GET /v1/audit-log.
func (h *Handler) Routes(rs httpx.Routers) {
	rs.Admin.Method(http.MethodGet, "/v1/audit-log", httpx.HandlerFunc(h.List))
}

// List is GET /v1/audit-log: the tenant's entries, newest first, filtered by actor, action,
// resource_type, resource_id and a from/to range of occurred_at.
func (h *Handler) List(w http.ResponseWriter, r *http.Request) error {
	page, err := httpx.ParsePage(r)
	if err != nil {
		return err
	}
	v := r.URL.Query()
	q := Query{Actor: v.Get("actor"), Action: v.Get("action"), ResourceType: v.Get("resource_type"), ResourceID: v.Get("resource_id")}
	var f errs.Fields
	for name, s := range map[string]string{"actor": q.Actor, "action": q.Action, "resource_type": q.ResourceType, "resource_id": q.ResourceID} {
		if len(s) > 200 {
			f.Add(name, "must be at most 200 characters")
		}
	}
	for name, dst := range map[string]*time.Time{"from": &q.From, "to": &q.To} {
		if s := v.Get(name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				f.Add(name, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
			}
			*dst = t
		}
	}
	if err := f.Err(); err != nil {
		return err
	}
	entries, err := h.Log.List(r.Context(), auth.TenantOf(r), q, page)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.NewList(entries, page, func(e Entry) uuid.UUID { return e.ID }))
	return nil
}
