package tenant

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/audit"
	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Deletion moves tenants to pending_deletion and back. The purge itself, after the grace
// period, is the purge package's (docs/lifecycle.md).
type Deletion struct {
	Tenants *Tenants
	Clock   clock.Clock
	Grace   time.Duration // TENANT_DELETION_GRACE
	// PurgeNow starts the purge of a tenant whose purge_after has come, once the request
	// that asked for it has committed; nil leaves it to the purge job.
	PurgeNow func(id uuid.UUID)
}

var (
	errConfirm   = errs.E(errs.Invalid, "confirmation_required", "confirm must be the tenant's slug")
	errGraceOver = errs.E(errs.Conflict, "conflict", "the tenant is not pending deletion, or its grace period has ended")
)

// Request puts the tenant in pending_deletion with purge_after at now plus the grace (at
// now if purgeNow). from names the statuses it may leave.
func (d *Deletion) request(ctx context.Context, id uuid.UUID, purgeAfter time.Time, from []string) (Tenant, error) {
	var t Tenant
	err := d.Tenants.DB.InTenantTx(ctx, id, func(tx pgx.Tx) (err error) {
		t, err = scanTenant(tx.QueryRow(ctx, `
			UPDATE tenants SET status = 'pending_deletion', purge_after = $2, updated_at = $3
			 WHERE id = $1 AND status = ANY ($4) RETURNING `+tenantColumns, id, purgeAfter, d.Clock.Now(), from))
		if postgres.IsNoRows(err) {
			var status string
			if e := tx.QueryRow(ctx, "SELECT status FROM tenants WHERE id = $1", id).Scan(&status); postgres.IsNoRows(e) || status == StatusDeleted {
				return errs.NotFoundf("no tenant %s", id)
			}
			return errs.E(errs.Conflict, "conflict", "the tenant is %s", status)
		}
		if err != nil {
			return err
		}
		return d.Tenants.Outbox.Append(ctx, tx, id, "tenant.deletion_requested", map[string]any{"id": id, "purge_after": purgeAfter})
	})
	d.Tenants.Directory.Invalidate(id)
	if err != nil {
		return Tenant{}, fmt.Errorf("tenants.delete %s: %w", id, err)
	}
	return t, nil
}

// Restore puts a tenant pending deletion back to active, within its grace period.
func (d *Deletion) Restore(ctx context.Context, id uuid.UUID) (Tenant, error) {
	var t Tenant
	err := d.Tenants.DB.InTenantTx(ctx, id, func(tx pgx.Tx) (err error) {
		now := d.Clock.Now()
		t, err = scanTenant(tx.QueryRow(ctx, `
			UPDATE tenants SET status = 'active', purge_after = NULL, updated_at = $2
			 WHERE id = $1 AND status = 'pending_deletion' AND purge_after > $2 RETURNING `+tenantColumns, id, now))
		if postgres.IsNoRows(err) {
			return errGraceOver
		}
		if err != nil {
			return err
		}
		return d.Tenants.Outbox.Append(ctx, tx, id, "tenant.restored", t)
	})
	d.Tenants.Directory.Invalidate(id)
	if err != nil {
		return Tenant{}, fmt.Errorf("tenants.restore %s: %w", id, err)
	}
	return t, nil
}

// DeletionHandler serves the deletion routes.
type DeletionHandler struct {
	Deletion *Deletion
}

// Routes mounts DELETE /v1/tenant, POST /v1/tenant/restore (owners) and the operator's
// DELETE /v1/admin/tenants/{id}.
func (h *DeletionHandler) Routes(rs httpx.Routers) {
	owner := rs.Member.With(auth.RequireRole(auth.RoleOwner))
	owner.Method(http.MethodDelete, "/v1/tenant", httpx.HandlerFunc(h.Delete))
	owner.Method(http.MethodPost, "/v1/tenant/restore", httpx.HandlerFunc(h.Restore))
	rs.Operator.Method(http.MethodDelete, "/v1/admin/tenants/{id}", httpx.HandlerFunc(h.AdminDelete))
}

// Delete is DELETE /v1/tenant {"confirm": "<slug>"}.
func (h *DeletionHandler) Delete(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Confirm string `json:"confirm"`
	}
	if r.ContentLength != 0 {
		if err := httpx.Decode(r, &in, 4<<10); err != nil {
			return err
		}
	}
	cur, ok := FromContext(r.Context())
	if !ok || in.Confirm == "" || in.Confirm != cur.Slug {
		return errConfirm
	}
	d := h.Deletion
	t, err := d.request(r.Context(), cur.ID, d.Clock.Now().Add(d.Grace), []string{StatusActive})
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusAccepted, t)
	return nil
}

// Restore is POST /v1/tenant/restore.
func (h *DeletionHandler) Restore(w http.ResponseWriter, r *http.Request) error {
	t, err := h.Deletion.Restore(r.Context(), auth.TenantOf(r))
	if err != nil {
		return err
	}
	httpx.JSON(w, http.StatusOK, t)
	return nil
}

// AdminDelete is DELETE /v1/admin/tenants/{id}[?purge=now].
func (h *DeletionHandler) AdminDelete(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathUUID(r, "id")
	if err != nil {
		return err
	}
	purge := r.URL.Query().Get("purge")
	if purge != "" && purge != "now" {
		return errs.Field("purge", "must be now")
	}
	d := h.Deletion
	now := d.Clock.Now()
	purgeAfter, from := now.Add(d.Grace), []string{StatusActive, StatusSuspended}
	if purge == "now" {
		purgeAfter, from = now, []string{StatusActive, StatusSuspended, StatusPendingDeletion}
	}
	t, err := d.request(r.Context(), id, purgeAfter, from)
	if err != nil {
		return err
	}
	if purge == "now" && d.PurgeNow != nil {
		audit.AfterCommit(r.Context(), func() { d.PurgeNow(id) })
	}
	httpx.JSON(w, http.StatusAccepted, t)
	return nil
}
