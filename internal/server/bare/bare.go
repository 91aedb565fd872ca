// Package bare is the baseline that the service's GET /v1/projects/{id} is measured
// against: a chi router and a pgx pool, the service's SELECT, JSON out, and nothing else (no
// request id, logging, metrics, recovery, authentication, rate limit or tenant transaction).
//
// BenchmarkGetProject in internal/server and cmd/load (`load bare`) both serve this one
// handler, so the two measure against the same baseline. The service never mounts it.
package bare

import (
	"encoding/json"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/saasbase/saasbase/internal/tenant"
)

// Pattern is the route of the baseline's one endpoint, GET of a project. The tenant is in
// the path because the baseline reads no credentials to learn it from.
const Pattern = "/projects/{tenant}/{id}"

// selectProject reads what the service's GET /v1/projects/{id} reads. The tenant is a
// condition here, where the service leaves it to row-level security.
const selectProject = "SELECT id, name, description, created_at, updated_at FROM projects WHERE tenant_id = $1 AND id = $2"

// Path is the path of project id of tenant.
func Path(tenant, id string) string { return "/projects/" + tenant + "/" + id }

// Handler serves GET Pattern from pool, as the user of the pool's database URL, and answers
// the project as the service does. An error is a 500 carrying its text: the baseline
// serves on loopback only, where the details help.
func Handler(pool *pgxpool.Pool) http.Handler {
	r := chi.NewRouter()
	r.Get(Pattern, func(w http.ResponseWriter, r *http.Request) {
		var p tenant.Project
		err := pool.QueryRow(r.Context(), selectProject, chi.URLParam(r, "tenant"), chi.URLParam(r, "id")).
			Scan(&p.ID, &p.Name, &p.Description, &p.CreatedAt, &p.UpdatedAt)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(p)
	})
	return r
}
