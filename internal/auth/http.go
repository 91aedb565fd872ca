package auth

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// Handler serves the token endpoint, logout, the JWKS and API keys.
type Handler struct {
	Grants  *Grants
	APIKeys *APIKeys
	Keys    *Keys
}

// Routes mounts the JWKS, the token endpoints (under the per-address budget: they work
// without a credential) and the tenant admins' API keys.
func (h *Handler) Routes(rs httpx.Routers) {
	rs.Root.Get("/.well-known/jwks.json", h.JWKS)

	rs.Public.With(rs.PerIP).Method(http.MethodPost, "/v1/auth/token", httpx.HandlerFunc(h.Token))
	rs.Public.With(rs.PerIP).Method(http.MethodPost, "/v1/auth/revoke", httpx.HandlerFunc(h.Revoke))

	// Creating a key answers its secret, which is never stored under an Idempotency-Key.
	rs.Admin.Method(http.MethodGet, "/v1/api-keys", httpx.HandlerFunc(h.ListAPIKeys))
	rs.Admin.Method(http.MethodPost, "/v1/api-keys", httpx.HandlerFunc(h.CreateAPIKey))
	rs.Admin.Method(http.MethodDelete, "/v1/api-keys/{id}", httpx.HandlerFunc(h.DeleteAPIKey))
}

// Token is POST /v1/auth/token.
func (h *Handler) Token(w http.ResponseWriter, r *http.Request) error {
	var in TokenRequest
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	pair, err := h.Grants.Token(r.Context(), in)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.JSON(w, http.StatusOK, pair)
	return nil
}

type revokeRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// Revoke is POST /v1/auth/revoke: logout.
func (h *Handler) Revoke(w http.ResponseWriter, r *http.Request) error {
	var in revokeRequest
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	if err := h.Grants.Sessions.Revoke(r.Context(), in.RefreshToken); err != nil {
		return err
	}
	httpx.NoContent(w)
	return nil
}

// JWKS is GET /.well-known/jwks.json.
func (h *Handler) JWKS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(h.Keys.JWKS())
}

// CreateAPIKey is POST /v1/api-keys.
func (h *Handler) CreateAPIKey(w http.ResponseWriter, r *http.Request) error {
	var in NewAPIKeyInput
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	k, err := h.APIKeys.Create(r.Context(), MustFromContext(r.Context()), in)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.JSON(w, http.StatusCreated, k)
	return nil
}

// ListAPIKeys is GET /v1/api-keys.
func (h *Handler) ListAPIKeys(w http.ResponseWriter, r *http.Request) error {
	page, err := httpx.ParsePage(r)
	if err != nil {
		return err
	}
	keys, err := h.APIKeys.List(r.Context(), MustFromContext(r.Context()).TenantID, page)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.NewList(keys, page, func(k APIKey) uuid.UUID { return k.ID }))
	return nil
}

// DeleteAPIKey is DELETE /v1/api-keys/{id}.
func (h *Handler) DeleteAPIKey(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	if err := h.APIKeys.Revoke(r.Context(), MustFromContext(r.Context()), id); err != nil {
		return err
	}
	httpx.NoContent(w)
	return nil
}
