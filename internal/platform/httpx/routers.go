package httpx

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// Routers are where a module mounts its routes (its Routes method). internal/server builds
// one router per kind of caller, each behind the chain of middleware that kind goes through
// (authentication, role, tenant status, rate limits, quota), so a module names only its
// paths, its handlers and who may call them; the order of the chain lives in one place.
// Paths are whole, as clients call them: the routers share one tree, so a request is routed
// once.
type Routers struct {
	Root     chi.Router // outside /v1, anyone (/.well-known/jwks.json)
	Public   chi.Router // /v1/..., anyone
	Operator chi.Router // /v1/admin/..., platform operators
	Member   chi.Router // /v1/..., any member of the calling tenant
	Admin    chi.Router // /v1/..., the calling tenant's admins and owners

	// PerIP shares one budget per client address among the routes that work without a
	// credential (signup, the token endpoints), and with failed authentications. Not for a
	// route authenticated otherwise, such as Stripe's signed webhook from Stripe's shared
	// addresses.
	PerIP func(http.Handler) http.Handler
	// Idempotent replays the stored answer of a retried Idempotency-Key. It is for POST and
	// PATCH routes whose answers reveal no secret; a module that needs other options (a
	// required key, phases, a larger body) builds its own from the idempotency module.
	Idempotent func(http.Handler) http.Handler
}
