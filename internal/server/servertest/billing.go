package servertest

import (
	"net/http"
	"testing"
	"time"
)

// CloudEvent is a usage event as a client sends it.
type CloudEvent struct {
	SpecVersion string         `json:"specversion"`
	ID          string         `json:"id"`
	Source      string         `json:"source"`
	Type        string         `json:"type"`
	Time        string         `json:"time,omitempty"`
	Data        map[string]any `json:"data"`
}

// TokensEvent is a usage event of the "tokens" meter that MeteredPlan defines.
func TokensEvent(id string, at time.Time, n int) CloudEvent {
	return CloudEvent{SpecVersion: "1.0", ID: id, Source: "test", Type: "tokens", Time: at.Format(time.RFC3339Nano), Data: map[string]any{"n": n}}
}

// PutMeter defines (or redefines) a meter as the operator.
func (s *Server) PutMeter(t testing.TB, key string, body map[string]any) {
	t.Helper()
	res := s.Do(t, Request{Method: "PUT", Path: "/v1/admin/meters/" + key, Token: s.PlatformToken(t), Body: body})
	if res.Status != http.StatusOK && res.Status != http.StatusCreated {
		t.Fatalf("PUT meter %s: %d %s", key, res.Status, res.Body)
	}
}

// PutPlan defines (or redefines) a plan as the operator.
func (s *Server) PutPlan(t testing.TB, code string, body map[string]any) {
	t.Helper()
	res := s.Do(t, Request{Method: "PUT", Path: "/v1/admin/plans/" + code, Token: s.PlatformToken(t), Body: body})
	if res.Status != http.StatusOK && res.Status != http.StatusCreated {
		t.Fatalf("PUT plan %s: %d %s", code, res.Status, res.Body)
	}
}

// MeteredPlan defines the plan "metered": a base fee of 10 usd, 0.01 usd per unit of the
// sum meter "tokens" (TokensEvent), and a soft quota of 1000 tokens.
func (s *Server) MeteredPlan(t testing.TB) {
	t.Helper()
	s.PutMeter(t, "tokens", map[string]any{"event_type": "tokens", "aggregation": "sum", "value_property": "$.n"})
	s.PutPlan(t, "metered", map[string]any{
		"name": "Metered", "currency": "usd", "base_fee": "10",
		"rate_limit": map[string]any{"requests_per_second": 100, "burst": 100},
		"quotas":     map[string]any{"tokens": map[string]any{"limit": 1000, "enforcement": "soft"}},
		"charges":    []any{map[string]any{"meter": "tokens", "model": "standard", "unit_price": "0.01"}},
	})
}

// OnPlan moves a tenant to a plan as the operator.
func (s *Server) OnPlan(t testing.TB, ten Tenant, plan string) {
	t.Helper()
	res := s.Do(t, Request{Method: "PATCH", Path: "/v1/admin/tenants/" + ten.ID, Token: s.PlatformToken(t), Body: map[string]string{"plan": plan}})
	if res.Status != http.StatusOK {
		t.Fatalf("PATCH plan: %d %s", res.Status, res.Body)
	}
}

// Ingest sends usage events (one CloudEvent or an array) as token.
func (s *Server) Ingest(t testing.TB, token string, body any) *Response {
	t.Helper()
	return s.Do(t, Request{Method: "POST", Path: "/v1/usage/events", Token: token, Body: body})
}
