package tenant

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// teamsRoutes mounts invitations for admins, and for anyone (under the per-address budget:
// they work without a credential) accepting one, password resets and email verification.
func (h *Handler) teamsRoutes(rs httpx.Routers) {
	public := rs.Public.With(rs.PerIP)
	public.Method(http.MethodPost, "/v1/invitations/accept", httpx.HandlerFunc(h.AcceptInvitation))
	public.Method(http.MethodPost, "/v1/auth/password-reset", httpx.HandlerFunc(h.RequestPasswordReset))
	public.Method(http.MethodPost, "/v1/auth/password-reset/confirm", httpx.HandlerFunc(h.ConfirmPasswordReset))
	public.Method(http.MethodPost, "/v1/auth/verify-email", httpx.HandlerFunc(h.VerifyEmail))

	admin, adminIdem := rs.Admin, rs.Admin.With(rs.Idempotent)
	admin.Method(http.MethodGet, "/v1/invitations", httpx.HandlerFunc(h.ListInvitations))
	adminIdem.Method(http.MethodPost, "/v1/invitations", httpx.HandlerFunc(h.CreateInvitation))
	admin.Method(http.MethodDelete, "/v1/invitations/{id}", httpx.HandlerFunc(h.RevokeInvitation))
	adminIdem.Method(http.MethodPost, "/v1/invitations/{id}/resend", httpx.HandlerFunc(h.ResendInvitation))
}

// CreateInvitation is POST /v1/invitations.
func (h *Handler) CreateInvitation(w http.ResponseWriter, r *http.Request) error {
	var in InvitationInput
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	inv, err := h.Invitations.Create(r.Context(), principal(r), in)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusCreated, inv)
	return nil
}

// ListInvitations is GET /v1/invitations.
func (h *Handler) ListInvitations(w http.ResponseWriter, r *http.Request) error {
	page, err := httpx.ParsePage(r)
	if err != nil {
		return err
	}
	invs, err := h.Invitations.List(r.Context(), principal(r).TenantID, page)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, httpx.NewList(invs, page, func(i Invitation) uuid.UUID { return i.ID }))
	return nil
}

// RevokeInvitation is DELETE /v1/invitations/{id}.
func (h *Handler) RevokeInvitation(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	if err := h.Invitations.Revoke(r.Context(), principal(r), id); err != nil {
		return err
	}
	httpx.NoContent(w)
	return nil
}

// ResendInvitation is POST /v1/invitations/{id}/resend.
func (h *Handler) ResendInvitation(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	inv, err := h.Invitations.Resend(r.Context(), principal(r), id)
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusAccepted, inv)
	return nil
}

// AcceptInvitation is POST /v1/invitations/accept.
func (h *Handler) AcceptInvitation(w http.ResponseWriter, r *http.Request) error {
	var in AcceptInput
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	res, err := h.Invitations.Accept(r.Context(), in)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.JSON(w, http.StatusCreated, res)
	return nil
}

// RequestPasswordReset is POST /v1/auth/password-reset: 202 whoever is named.
func (h *Handler) RequestPasswordReset(w http.ResponseWriter, r *http.Request) error {
	var in ResetRequest
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	if err := h.Recovery.RequestReset(r.Context(), in); err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// ConfirmPasswordReset is POST /v1/auth/password-reset/confirm.
func (h *Handler) ConfirmPasswordReset(w http.ResponseWriter, r *http.Request) error {
	var in ResetConfirm
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	if err := h.Recovery.ConfirmReset(r.Context(), in); err != nil {
		return err
	}
	httpx.NoContent(w)
	return nil
}

// VerifyEmail is POST /v1/auth/verify-email.
func (h *Handler) VerifyEmail(w http.ResponseWriter, r *http.Request) error {
	var in VerifyInput
	if err := httpx.Decode(r, &in, httpx.MaxBody); err != nil {
		return err
	}
	if err := h.Recovery.VerifyEmail(r.Context(), in); err != nil {
		return err
	}
	httpx.NoContent(w)
	return nil
}
