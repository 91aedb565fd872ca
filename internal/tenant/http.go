package tenant

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// Handler serves tenants, users, the caller and projects. Each method decodes, calls a
// service and encodes; errors go back to httpx.HandlerFunc.
type Handler struct {
	Tenants     *Tenants
	Users       *Users
	Projects    *Projects
	Invitations *Invitations
	Recovery    *Recovery
}

// Routes mounts signup for anyone (under the per-address budget), the tenants for
// operators, the caller, its tenant and projects for members, and the tenant's settings and
// users for its admins. The members' and admins' POST and PATCH routes take an
// Idempotency-Key.
func (h *Handler) Routes(rs httpx.Routers) {
	rs.Public.With(rs.PerIP).Method(http.MethodPost, "/v1/signup", httpx.HandlerFunc(h.Signup))

	rs.Operator.Method(http.MethodGet, "/v1/admin/tenants", httpx.HandlerFunc(h.AdminListTenants))
	rs.Operator.Method(http.MethodGet, "/v1/admin/tenants/{id}", httpx.HandlerFunc(h.AdminGetTenant))
	rs.Operator.Method(http.MethodPatch, "/v1/admin/tenants/{id}", httpx.HandlerFunc(h.AdminUpdateTenant))

	member, idem := rs.Member, rs.Member.With(rs.Idempotent)
	member.Method(http.MethodGet, "/v1/me", httpx.HandlerFunc(h.Me))
	idem.Method(http.MethodPost, "/v1/me/password", httpx.HandlerFunc(h.ChangePassword))
	member.Method(http.MethodGet, "/v1/tenant", httpx.HandlerFunc(h.GetTenant))

	member.Method(http.MethodGet, "/v1/projects", httpx.HandlerFunc(h.ListProjects))
	idem.Method(http.MethodPost, "/v1/projects", httpx.HandlerFunc(h.CreateProject))
	member.Method(http.MethodGet, "/v1/projects/{id}", httpx.HandlerFunc(h.GetProject))
	idem.Method(http.MethodPatch, "/v1/projects/{id}", httpx.HandlerFunc(h.UpdateProject))
	member.Method(http.MethodDelete, "/v1/projects/{id}", httpx.HandlerFunc(h.DeleteProject))

	admin, adminIdem := rs.Admin, rs.Admin.With(rs.Idempotent)
	adminIdem.Method(http.MethodPatch, "/v1/tenant", httpx.HandlerFunc(h.UpdateTenant))
	admin.Method(http.MethodGet, "/v1/users", httpx.HandlerFunc(h.ListUsers))
	adminIdem.Method(http.MethodPost, "/v1/users", httpx.HandlerFunc(h.CreateUser))
	admin.Method(http.MethodGet, "/v1/users/{id}", httpx.HandlerFunc(h.GetUser))
	adminIdem.Method(http.MethodPatch, "/v1/users/{id}", httpx.HandlerFunc(h.UpdateUser))
	admin.Method(http.MethodDelete, "/v1/users/{id}", httpx.HandlerFunc(h.DeleteUser))

	h.teamsRoutes(rs)
}

func principal(r *http.Request) auth.Principal { return auth.MustFromContext(r.Context()) }

// Signup is POST /v1/signup.
func (h *Handler) Signup(w http.ResponseWriter, r *http.Request) error {
	var in SignupInput
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	res, err := h.Users.Signup(r.Context(), in)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.JSON(w, http.StatusCreated, res)
	return nil
}

// Me is GET /v1/me.
func (h *Handler) Me(w http.ResponseWriter, r *http.Request) error {
	me, err := h.Users.Me(r.Context(), principal(r))
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, me)
	return nil
}

// ChangePassword is POST /v1/me/password.
func (h *Handler) ChangePassword(w http.ResponseWriter, r *http.Request) error {
	var in PasswordChange
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	if err := h.Users.ChangePassword(r.Context(), principal(r), in); err != nil {
		return err
	}
	httpx.NoContent(w)
	return nil
}

// GetTenant is GET /v1/tenant.
func (h *Handler) GetTenant(w http.ResponseWriter, r *http.Request) error {
	t, err := h.Tenants.Get(r.Context(), principal(r).TenantID)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, t)
	return nil
}

// UpdateTenant is PATCH /v1/tenant.
func (h *Handler) UpdateTenant(w http.ResponseWriter, r *http.Request) error {
	var in TenantUpdate
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	t, err := h.Tenants.Update(r.Context(), principal(r).TenantID, in)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, t)
	return nil
}

// ListUsers is GET /v1/users.
func (h *Handler) ListUsers(w http.ResponseWriter, r *http.Request) error {
	page, err := httpx.ParsePage(r)
	if err != nil {
		return err
	}
	users, err := h.Users.List(r.Context(), principal(r).TenantID, page)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.NewList(users, page, func(u User) uuid.UUID { return u.ID }))
	return nil
}

// CreateUser is POST /v1/users.
func (h *Handler) CreateUser(w http.ResponseWriter, r *http.Request) error {
	var in NewUserInput
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	u, err := h.Users.Create(r.Context(), principal(r), in)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusCreated, u)
	return nil
}

// GetUser is GET /v1/users/{id}.
func (h *Handler) GetUser(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	u, err := h.Users.Get(r.Context(), principal(r).TenantID, id)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, u)
	return nil
}

// UpdateUser is PATCH /v1/users/{id}.
func (h *Handler) UpdateUser(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	var in RoleUpdate
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	u, err := h.Users.SetRole(r.Context(), principal(r), id, in.Role)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, u)
	return nil
}

// DeleteUser is DELETE /v1/users/{id}.
func (h *Handler) DeleteUser(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	if err := h.Users.Delete(r.Context(), principal(r), id); err != nil {
		return err
	}
	httpx.NoContent(w)
	return nil
}

// ListProjects is GET /v1/projects.
func (h *Handler) ListProjects(w http.ResponseWriter, r *http.Request) error {
	page, err := httpx.ParsePage(r)
	if err != nil {
		return err
	}
	ps, err := h.Projects.List(r.Context(), principal(r).TenantID, page)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.NewList(ps, page, func(p Project) uuid.UUID { return p.ID }))
	return nil
}

// CreateProject is POST /v1/projects.
func (h *Handler) CreateProject(w http.ResponseWriter, r *http.Request) error {
	in := ProjectInput{create: true}
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	p, err := h.Projects.Create(r.Context(), principal(r).TenantID, in)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusCreated, p)
	return nil
}

// GetProject is GET /v1/projects/{id}.
func (h *Handler) GetProject(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	p, err := h.Projects.Get(r.Context(), principal(r).TenantID, id)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, p)
	return nil
}

// UpdateProject is PATCH /v1/projects/{id}.
func (h *Handler) UpdateProject(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	var in ProjectInput
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	p, err := h.Projects.Update(r.Context(), principal(r).TenantID, id, in)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, p)
	return nil
}

// DeleteProject is DELETE /v1/projects/{id}.
func (h *Handler) DeleteProject(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	if err := h.Projects.Delete(r.Context(), principal(r).TenantID, id); err != nil {
		return err
	}
	httpx.NoContent(w)
	return nil
}

// AdminListTenants is GET /v1/admin/tenants.
func (h *Handler) AdminListTenants(w http.ResponseWriter, r *http.Request) error {
	page, err := httpx.ParsePage(r)
	if err != nil {
		return err
	}
	ts, err := h.Tenants.List(r.Context(), page)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.NewList(ts, page, func(t Tenant) uuid.UUID { return t.ID }))
	return nil
}

// AdminGetTenant is GET /v1/admin/tenants/{id}.
func (h *Handler) AdminGetTenant(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	t, err := h.Tenants.Get(r.Context(), id)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, t)
	return nil
}

// AdminUpdateTenant is PATCH /v1/admin/tenants/{id}.
func (h *Handler) AdminUpdateTenant(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	var in AdminUpdate
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	t, err := h.Tenants.AdminUpdate(r.Context(), id, &in)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, t)
	return nil
}
