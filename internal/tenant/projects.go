package tenant

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Project is the sample tenant-owned resource: the shape to copy for your own.
type Project struct {
	ID          uuid.UUID `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// ProjectInput is the body of POST (all fields) and PATCH (any fields) /v1/projects.
type ProjectInput struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`

	create bool
}

// Validate checks the fields present; a create needs a name.
func (in ProjectInput) Validate() error {
	var f errs.Fields
	switch {
	case in.Name == nil && in.create:
		f.Add("name", "is required")
	case in.Name != nil && (*in.Name == "" || utf8.RuneCountInString(*in.Name) > 200):
		f.Add("name", "must be 1 to 200 characters")
	}
	if in.Description != nil && utf8.RuneCountInString(*in.Description) > 2000 {
		f.Add("description", "must be at most 2000 characters")
	}
	return f.Err()
}

const projectColumns = "id, name, description, created_at, updated_at"

func scanProject(row pgx.Row) (Project, error) {
	var p Project
	err := row.Scan(&p.ID, &p.Name, &p.Description, &p.CreatedAt, &p.UpdatedAt)
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	if postgres.IsNoRows(err) {
		return Project{}, errs.NotFoundf("no such project")
	}
	return p, err
}

// Projects manages a tenant's projects.
type Projects struct {
	DB     *postgres.DB
	Outbox *events.Outbox
	Clock  clock.Clock
	Flags  Flags // nil: no project limit
}

// Flags is what projects ask of the feature flags: *flags.Client.
type Flags interface {
	Number(ctx context.Context, key string, def float64) float64
}

// checkLimit refuses a project past the tenant's limit, which the project-limit flag sets by
// plan (docs/flags.md); 0 means none. Locking the tenant's row makes concurrent creations
// take turns, so two cannot both take the last place.
func (s *Projects) checkLimit(ctx context.Context, tx pgx.Tx, tenantID uuid.UUID) error {
	if s.Flags == nil {
		return nil
	}
	limit := int(s.Flags.Number(ctx, "project-limit", 0))
	if limit <= 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, "SELECT FROM tenants WHERE id = $1 FOR UPDATE", tenantID); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n); err != nil {
		return err
	}
	if n >= limit {
		return errs.E(errs.Conflict, "conflict", "your plan allows %d projects", limit)
	}
	return nil
}

// Create stores a new project and its project.created event.
func (s *Projects) Create(ctx context.Context, tenantID uuid.UUID, in ProjectInput) (Project, error) {
	var p Project
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) (err error) {
		if err := s.checkLimit(ctx, tx, tenantID); err != nil {
			return err
		}
		desc := ""
		if in.Description != nil {
			desc = *in.Description
		}
		p, err = scanProject(tx.QueryRow(ctx, `
			INSERT INTO projects (tenant_id, id, name, description, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $5) RETURNING `+projectColumns,
			tenantID, uuid.Must(uuid.NewV7()), *in.Name, desc, s.Clock.Now()))
		if err != nil {
			return err
		}
		return s.Outbox.Append(ctx, tx, tenantID, "project.created", p)
	})
	if err != nil {
		return Project{}, fmt.Errorf("projects.create tenant %s: %w", tenantID, err)
	}
	return p, nil
}

// Get answers one project, in one round trip.
func (s *Projects) Get(ctx context.Context, tenantID, id uuid.UUID) (Project, error) {
	p, err := postgres.ReadRow(ctx, s.DB, tenantID, scanProject, "SELECT "+projectColumns+" FROM projects WHERE id = $1", id)
	if err != nil {
		return Project{}, fmt.Errorf("projects.get %s: %w", id, err)
	}
	return p, nil
}

// List answers the tenant's projects in creation order.
func (s *Projects) List(ctx context.Context, tenantID uuid.UUID, page httpx.Page) ([]Project, error) {
	var out []Project
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, "SELECT "+projectColumns+" FROM projects WHERE id > $1 ORDER BY id LIMIT $2", page.Cursor, page.Limit+1)
		var err error
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Project, error) { return scanProject(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("projects.list tenant %s: %w", tenantID, err)
	}
	return out, nil
}

// Update changes the fields present.
func (s *Projects) Update(ctx context.Context, tenantID, id uuid.UUID, in ProjectInput) (Project, error) {
	var p Project
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) (err error) {
		p, err = scanProject(tx.QueryRow(ctx, `
			UPDATE projects SET name = coalesce($2, name), description = coalesce($3, description), updated_at = $4
			 WHERE id = $1 RETURNING `+projectColumns, id, in.Name, in.Description, s.Clock.Now()))
		if err != nil {
			return err
		}
		return s.Outbox.Append(ctx, tx, tenantID, "project.updated", p)
	})
	if err != nil {
		return Project{}, fmt.Errorf("projects.update %s: %w", id, err)
	}
	return p, nil
}

// Delete removes a project.
func (s *Projects) Delete(ctx context.Context, tenantID, id uuid.UUID) error {
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM projects WHERE id = $1", id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errs.NotFoundf("no such project")
		}
		return s.Outbox.Append(ctx, tx, tenantID, "project.deleted", map[string]uuid.UUID{"id": id})
	})
	if err != nil {
		return fmt.Errorf("projects.delete %s: %w", id, err)
	}
	return nil
}
