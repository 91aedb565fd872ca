package flags

import (
	"context"
	"errors"
	"net/http"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// Handler serves evaluations to tenants: the REST endpoints here and OFREP (ofrep.go). Every
// request evaluates through one snapshot, so it sees one configuration version. The tenant
// comes from Client.Tenant (the server's record), never from the request.
type Handler struct {
	Client *Client
}

// Routes mounts the REST evaluations for the tenant's members.
func (h *Handler) Routes(rs httpx.Routers) {
	rs.Member.Method(http.MethodGet, "/v1/flags", httpx.HandlerFunc(h.List))
	rs.Member.Method(http.MethodGet, "/v1/flags/{key}", httpx.HandlerFunc(h.Get))
}

// OFREPRoutes mounts OFREP's evaluations on r. The server places r at /ofrep/v1, outside
// /v1, where OpenFeature SDKs look for them, behind the same authentication and tenant chain
// as the member routes.
func (h *Handler) OFREPRoutes(r chi.Router) {
	r.Post("/evaluate/flags", h.OFREPBulk)
	r.Post("/evaluate/flags/{key}", h.OFREPFlag)
}

// Evaluation is one flag's answer, as the tenant endpoints and OFREP give it.
type Evaluation struct {
	Key     string `json:"key"`
	Value   any    `json:"value"`
	Variant string `json:"variant"`
	Reason  Reason `json:"reason"`
}

func evaluation(r Result) Evaluation {
	return Evaluation{Key: r.Key, Value: r.Value, Variant: r.Variant, Reason: r.Reason}
}

// maxTargetingKey bounds a caller's targeting key (characters).
const maxTargetingKey = 256

// errNoTenant is a wiring mistake: a tenant route without the tenant middleware in front.
var errNoTenant = errors.New("flags: no tenant in the request context: the route is missing tenant.RequireActive")

// tenantTarget answers the request's tenant as a Target with the given targeting key.
func (h *Handler) tenantTarget(ctx context.Context, key string) (Target, error) {
	if h.Client.Tenant == nil {
		return Target{}, errNoTenant
	}
	t, ok := h.Client.Tenant(ctx)
	if !ok {
		return Target{}, errNoTenant
	}
	return Target{Tenant: t, Key: key}, nil
}

func targetingKeyParam(r *http.Request) (string, error) {
	key := r.URL.Query().Get("targeting_key")
	if utf8.RuneCountInString(key) > maxTargetingKey {
		return "", errs.Field("targeting_key", "must be at most 256 characters")
	}
	return key, nil
}

// List is GET /v1/flags?targeting_key=: every flag for the caller, by key.
func (h *Handler) List(w http.ResponseWriter, r *http.Request) error {
	key, err := targetingKeyParam(r)
	if err != nil {
		return err
	}
	t, err := h.tenantTarget(r.Context(), key)
	if err != nil {
		return err
	}
	results := h.Client.Snapshot(r.Context()).EvaluateAll(t)
	out := make([]Evaluation, len(results))
	for i, res := range results {
		out[i] = evaluation(res)
	}
	httpx.JSON(w, http.StatusOK, httpx.List[Evaluation]{Data: out})
	return nil
}

// Get is GET /v1/flags/{key}?targeting_key=.
func (h *Handler) Get(w http.ResponseWriter, r *http.Request) error {
	key, err := targetingKeyParam(r)
	if err != nil {
		return err
	}
	t, err := h.tenantTarget(r.Context(), key)
	if err != nil {
		return err
	}
	flagKey := chi.URLParam(r, "key")
	res := h.Client.Snapshot(r.Context()).Evaluate(flagKey, TypeAny, t)
	switch {
	case res.ErrorCode == CodeFlagNotFound:
		return errNoFlag(flagKey)
	case res.Reason == ReasonError:
		return errs.E(errs.Internal, "internal", "evaluating flag %q failed: %s", flagKey, res.ErrorCode)
	}
	httpx.JSON(w, http.StatusOK, evaluation(res))
	return nil
}

// AdminHandler serves the operators' flag endpoints (/v1/admin/flags...). Reads come from
// the database, not the snapshot, so an operator always sees what is stored.
type AdminHandler struct {
	Store *Store
	Admin *Admin
}

// Routes mounts the flag administration for operators.
func (h *AdminHandler) Routes(rs httpx.Routers) {
	op := rs.Operator
	op.Method(http.MethodGet, "/v1/admin/flags", httpx.HandlerFunc(h.ListFlags))
	op.Method(http.MethodGet, "/v1/admin/flags/{key}", httpx.HandlerFunc(h.GetFlag))
	op.Method(http.MethodPut, "/v1/admin/flags/{key}", httpx.HandlerFunc(h.PutFlag))
	op.Method(http.MethodDelete, "/v1/admin/flags/{key}", httpx.HandlerFunc(h.DeleteFlag))
	op.Method(http.MethodGet, "/v1/admin/flags/{key}/overrides", httpx.HandlerFunc(h.ListOverrides))
	op.Method(http.MethodPut, "/v1/admin/flags/{key}/overrides/{tenant_id}", httpx.HandlerFunc(h.PutOverride))
	op.Method(http.MethodDelete, "/v1/admin/flags/{key}/overrides/{tenant_id}", httpx.HandlerFunc(h.DeleteOverride))
	op.Method(http.MethodGet, "/v1/admin/flags/{key}/audit", httpx.HandlerFunc(h.ListAudit))
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
