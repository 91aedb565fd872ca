package flags

import (
	"context"
	"errors"
	"net/http"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// Handler serves evaluations to tenants: the REST endpoints here and OFREP (ofrep.go). Every
// request evaluates through one snapshot, so it sees one configuration version. The tenant
// comes from Client.Tenant (the server's record), never from the request.
type Handler struct {
	Client *Client
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
