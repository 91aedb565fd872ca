package metering_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// Entitlements show each quota of the plan against this period's usage.
func TestEntitlements(t *testing.T) {
	s := servertest.New(t)
	s.MeteredPlan(t)
	a := s.Signup(t, "ent")
	s.OnPlan(t, a, "metered")
	s.Ingest(t, a.Token, servertest.TokensEvent("x", time.Now().Add(-time.Minute), 900))
	var ent struct {
		Data []struct {
			Meter     string
			Limit     int64
			Usage     float64
			Remaining float64
			HasAccess bool `json:"has_access"`
		}
	}
	s.Do(t, servertest.Request{Method: "GET", Path: "/v1/entitlements", Token: a.Token}).Decode(t, &ent)
	if len(ent.Data) != 1 || ent.Data[0].Meter != "tokens" || ent.Data[0].Usage != 900 || ent.Data[0].Remaining != 100 || !ent.Data[0].HasAccess {
		t.Fatalf("entitlements %+v", ent.Data)
	}
	// 900 of 1000 passed the 80% threshold: one event, and none again on more usage below 100%.
	s.Ingest(t, a.Token, servertest.TokensEvent("y", time.Now().Add(-time.Minute), 1))
	var evs struct{ Data []json.RawMessage }
	s.Do(t, servertest.Request{Method: "GET", Path: "/v1/events?type=usage.quota_threshold_reached", Token: a.Token}).Decode(t, &evs)
	if len(evs.Data) != 1 {
		t.Fatalf("%d threshold events, want 1 (80%%)", len(evs.Data))
	}
}

func planWithRequestQuota(t *testing.T, s *servertest.Server, code, enforcement string, limit int) {
	res := s.Do(t, servertest.Request{Method: "PUT", Path: "/v1/admin/plans/" + code, Token: s.PlatformToken(t), Body: map[string]any{
		"name": code, "currency": "usd", "base_fee": "0",
		"rate_limit": map[string]any{"requests_per_second": 1000, "burst": 1000},
		"quotas":     map[string]any{"api_requests": map[string]any{"limit": limit, "enforcement": enforcement}},
	}})
	if res.Status != 201 && res.Status != 200 {
		t.Fatalf("PUT plan: %d %s", res.Status, res.Body)
	}
}

// Test 6: requests past a hard quota are 429 quota_exceeded; a soft quota lets them through
// and emits the threshold events, once each.
func TestRequestQuotas(t *testing.T) {
	s := servertest.New(t)
	ctx := context.Background()
	planWithRequestQuota(t, s, "tiny-hard", "hard", 5)
	planWithRequestQuota(t, s, "tiny-soft", "soft", 5)
	hard, soft := s.Signup(t, "quota-hard"), s.Signup(t, "quota-soft")
	s.OnPlan(t, hard, "tiny-hard")
	s.OnPlan(t, soft, "tiny-soft")
	get := func(ten servertest.Tenant) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "GET", Path: "/v1/projects", Token: ten.Token})
	}
	for range 3 {
		get(hard)
		get(soft)
	}
	if _, err := s.App.Requests.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var statuses []int
	for range 4 {
		statuses = append(statuses, get(hard).Status)
	}
	if statuses[0] != 200 || statuses[1] != 200 || statuses[2] != 429 || statuses[3] != 429 {
		t.Fatalf("statuses past 3 of 5: %v, want 200 200 429 429", statuses)
	}
	res := get(hard)
	if p := res.Problem(t); p.Code != "quota_exceeded" || res.Header.Get("Retry-After") == "" {
		t.Fatalf("quota answer: %s %v", res.Body, res.Header)
	}
	for range 10 {
		if res := get(soft); res.Status != 200 {
			t.Fatalf("soft quota refused: %d %s", res.Status, res.Body)
		}
	}
	if _, err := s.App.Requests.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.App.Requests.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// The hard tenant can read nothing now, its event log included: read the outbox directly.
	for _, ten := range []servertest.Tenant{hard, soft} {
		rows, err := pgtest.Owner(t).Query(ctx, `SELECT (data->>'threshold')::int FROM outbox
			WHERE tenant_id = $1 AND type = 'usage.quota_threshold_reached' ORDER BY id`, ten.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != 80 || got[1] != 100 {
			t.Fatalf("%s: threshold events %v, want 80 then 100, once each", ten.Slug, got)
		}
	}
}
