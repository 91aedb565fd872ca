package webhook

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// Handler serves /v1/webhook-endpoints. Each method decodes, calls Endpoints and encodes;
// the routes are for tenant admins (the router checks the role).
type Handler struct {
	Endpoints *Endpoints
}

// Routes mounts the webhook endpoints for the tenant's admins.
func (h *Handler) Routes(rs httpx.Routers) {
	admin, idem := rs.Admin, rs.Admin.With(rs.Idempotent)
	admin.Method(http.MethodGet, "/v1/webhook-endpoints", httpx.HandlerFunc(h.List))
	// Creating one reveals its secret: never stored under a key.
	admin.Method(http.MethodPost, "/v1/webhook-endpoints", httpx.HandlerFunc(h.Create))
	admin.Method(http.MethodGet, "/v1/webhook-endpoints/{id}", httpx.HandlerFunc(h.Get))
	admin.Method(http.MethodDelete, "/v1/webhook-endpoints/{id}", httpx.HandlerFunc(h.Delete))
	// Rotating reveals the new secret: never stored under a key either.
	admin.Method(http.MethodPost, "/v1/webhook-endpoints/{id}/rotate-secret", httpx.HandlerFunc(h.RotateSecret))
	idem.Method(http.MethodPost, "/v1/webhook-endpoints/{id}/enable", httpx.HandlerFunc(h.Enable))
	admin.Method(http.MethodGet, "/v1/webhook-endpoints/{id}/deliveries", httpx.HandlerFunc(h.Deliveries))
	idem.Method(http.MethodPost, "/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/retry", httpx.HandlerFunc(h.Retry))
}

// Create is POST /v1/webhook-endpoints. The answer reveals the secret, so it is never
// stored, neither by caches nor under an Idempotency-Key.
func (h *Handler) Create(w http.ResponseWriter, r *http.Request) error {
	var in EndpointInput
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	e, err := h.Endpoints.Create(r.Context(), auth.TenantOf(r), in)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.JSON(w, http.StatusCreated, e)
	return nil
}

// List is GET /v1/webhook-endpoints.
func (h *Handler) List(w http.ResponseWriter, r *http.Request) error {
	page, err := httpx.ParsePage(r)
	if err != nil {
		return err
	}
	es, err := h.Endpoints.List(r.Context(), auth.TenantOf(r), page)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.NewList(es, page, func(e Endpoint) uuid.UUID { return e.ID }))
	return nil
}

// Get is GET /v1/webhook-endpoints/{id}.
func (h *Handler) Get(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	e, err := h.Endpoints.Get(r.Context(), auth.TenantOf(r), id)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, e)
	return nil
}

// Delete is DELETE /v1/webhook-endpoints/{id}.
func (h *Handler) Delete(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	if err := h.Endpoints.Delete(r.Context(), auth.TenantOf(r), id); err != nil {
		return err
	}
	httpx.NoContent(w)
	return nil
}

// RotateSecret is POST /v1/webhook-endpoints/{id}/rotate-secret: 200, the endpoint with its
// new secret. Like Create's, the answer is never stored.
func (h *Handler) RotateSecret(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	e, err := h.Endpoints.RotateSecret(r.Context(), auth.TenantOf(r), id)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.JSON(w, http.StatusOK, e)
	return nil
}

// Enable is POST /v1/webhook-endpoints/{id}/enable.
func (h *Handler) Enable(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	e, err := h.Endpoints.Enable(r.Context(), auth.TenantOf(r), id)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, e)
	return nil
}

// Deliveries is GET /v1/webhook-endpoints/{id}/deliveries: newest first, with attempts.
func (h *Handler) Deliveries(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	page, err := httpx.ParsePage(r)
	if err != nil {
		return err
	}
	ds, err := h.Endpoints.Deliveries(r.Context(), auth.TenantOf(r), id, page)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.NewList(ds, page, func(d Delivery) uuid.UUID { return d.ID }))
	return nil
}

// Retry is POST /v1/webhook-endpoints/{id}/deliveries/{delivery_id}/retry: 202, the
// delivery as it now stands, its next attempt due at once.
func (h *Handler) Retry(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	deliveryID, err := httpx.PathUUID(r, "delivery_id")
	if err != nil {
		return err
	}
	d, err := h.Endpoints.Retry(r.Context(), auth.TenantOf(r), id, deliveryID)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusAccepted, d)
	return nil
}
