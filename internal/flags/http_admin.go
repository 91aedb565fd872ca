package flags

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// AdminHandler serves the operators' flag endpoints (/v1/admin/flags...). Reads come from
// the database, not the snapshot, so an operator always sees what is stored.
type AdminHandler struct {
	Store *Store
	Admin *Admin
}

// actorOf names a principal in the audit trail. Operator tokens carry no subject in the
// principal today, so every operator is "platform_admin".
func actorOf(p auth.Principal) string {
	switch p.Kind {
	case auth.KindPlatform:
		if p.ID != uuid.Nil {
			return "platform_admin:" + p.ID.String()
		}
		return "platform_admin"
	case auth.KindUser:
		return "user:" + p.ID.String()
	case auth.KindAPIKey:
		return "api_key:" + p.ID.String()
	}
	return "unknown"
}

func actor(r *http.Request) string { return actorOf(auth.MustFromContext(r.Context())) }

// ListFlags is GET /v1/admin/flags: every flag, by key, in one page.
func (h *AdminHandler) ListFlags(w http.ResponseWriter, r *http.Request) error {
	flags, err := h.Store.List(r.Context())
	if err != nil {
		return err
	}
	if flags == nil {
		flags = []Flag{}
	}
	httpx.JSON(w, http.StatusOK, httpx.List[Flag]{Data: flags})
	return nil
}

// GetFlag is GET /v1/admin/flags/{key}.
func (h *AdminHandler) GetFlag(w http.ResponseWriter, r *http.Request) error {
	f, err := h.Store.Get(r.Context(), chi.URLParam(r, "key"))
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, f)
	return nil
}

// PutFlag is PUT /v1/admin/flags/{key}: 201 when created, 200 when replaced (or unchanged).
func (h *AdminHandler) PutFlag(w http.ResponseWriter, r *http.Request) error {
	var in FlagInput
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	f, created, err := h.Admin.PutFlag(r.Context(), actor(r), chi.URLParam(r, "key"), in)
	if err != nil {
		return err
	}
	httpx.JSON(w, createdOrOK(created), f)
	return nil
}

// DeleteFlag is DELETE /v1/admin/flags/{key}: the flag and its overrides.
func (h *AdminHandler) DeleteFlag(w http.ResponseWriter, r *http.Request) error {
	if err := h.Admin.DeleteFlag(r.Context(), actor(r), chi.URLParam(r, "key")); err != nil {
		return err
	}
	httpx.NoContent(w)
	return nil
}

// ListOverrides is GET /v1/admin/flags/{key}/overrides: a page of overrides, by tenant id.
func (h *AdminHandler) ListOverrides(w http.ResponseWriter, r *http.Request) error {
	page, err := httpx.ParsePage(r)
	if err != nil {
		return err
	}
	overrides, err := h.Store.Overrides(r.Context(), chi.URLParam(r, "key"), page)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.NewList(overrides, page, func(o Override) uuid.UUID { return o.TenantID }))
	return nil
}

// PutOverride is PUT /v1/admin/flags/{key}/overrides/{tenant_id}: 201 when new, else 200.
func (h *AdminHandler) PutOverride(w http.ResponseWriter, r *http.Request) error {
	tenantID, err := httpx.PathUUID(r, "tenant_id")
	if err != nil {
		return err
	}
	var in OverrideInput
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	o, created, err := h.Admin.SetOverride(r.Context(), actor(r), chi.URLParam(r, "key"), tenantID, in)
	if err != nil {
		return err
	}
	httpx.JSON(w, createdOrOK(created), o)
	return nil
}

// DeleteOverride is DELETE /v1/admin/flags/{key}/overrides/{tenant_id}.
func (h *AdminHandler) DeleteOverride(w http.ResponseWriter, r *http.Request) error {
	tenantID, err := httpx.PathUUID(r, "tenant_id")
	if err != nil {
		return err
	}
	if err := h.Admin.DeleteOverride(r.Context(), actor(r), chi.URLParam(r, "key"), tenantID); err != nil {
		return err
	}
	httpx.NoContent(w)
	return nil
}

// ListAudit is GET /v1/admin/flags/{key}/audit: the flag's changes, newest first. The trail
// of a deleted flag stays readable.
func (h *AdminHandler) ListAudit(w http.ResponseWriter, r *http.Request) error {
	page, err := httpx.ParsePage(r)
	if err != nil {
		return err
	}
	entries, err := h.Store.Audit(r.Context(), chi.URLParam(r, "key"), page)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.NewList(entries, page, func(e AuditEntry) uuid.UUID { return e.ID }))
	return nil
}

func createdOrOK(created bool) int {
	if created {
		return http.StatusCreated
	}
	return http.StatusOK
}
