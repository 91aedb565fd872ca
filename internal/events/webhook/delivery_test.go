package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/events/webhook"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// Test 5: a receiver answering 500 then 200 gets the event twice, with the same webhook-id,
// each time signed with the endpoint's secret; the attempts are listed.
func TestDeliverySignedAndRetried(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, true)
	tenant := f.newTenant()
	rcv := newReceiver(t, http.StatusInternalServerError, http.StatusOK)
	ep, err := f.endpoints.Create(ctx, tenant, webhook.EndpointInput{URL: rcv.URL + "/hook", EventTypes: []string{"project.*"}})
	if err != nil {
		t.Fatal(err)
	}
	f.emit(tenant, "user.created", map[string]string{"not": "subscribed"})
	eventID := f.emit(tenant, "project.created", map[string]string{"name": "apollo"})

	if n := f.deliverDue(); n != 1 {
		t.Fatalf("first round sent %d deliveries, want 1 (user.created is not subscribed)", n)
	}
	if n := f.deliverDue(); n != 0 {
		t.Fatalf("sent %d deliveries before the retry is due", n)
	}
	f.clock.Advance(time.Minute)
	if n := f.deliverDue(); n != 1 {
		t.Fatalf("second round sent %d deliveries, want the retry", n)
	}

	got := rcv.requests()
	if len(got) != 2 {
		t.Fatalf("receiver got %d requests, want 2", len(got))
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(ep.Secret, "whsec_"))
	if err != nil || !strings.HasPrefix(ep.Secret, "whsec_") || len(key) != 32 {
		t.Fatalf("secret %q is not whsec_ and the base64 of a 32-byte key", ep.Secret)
	}
	for i, r := range got {
		id, ts := r.header.Get("webhook-id"), r.header.Get("webhook-timestamp")
		if id != eventID.String() {
			t.Errorf("request %d: webhook-id %q, want the event id %s", i, id, eventID)
		}
		// The receiver's check, written out from the Standard Webhooks specification.
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "." + string(r.body)))
		if want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); r.header.Get("webhook-signature") != want {
			t.Errorf("request %d: webhook-signature %q, want %q", i, r.header.Get("webhook-signature"), want)
		}
		sec, _ := strconv.ParseInt(ts, 10, 64)
		if err := webhook.Verify(ep.Secret, r.header, r.body, time.Unix(sec, 0), 5*time.Minute); err != nil {
			t.Errorf("request %d: Verify: %v", i, err)
		}
		var env struct {
			ID         uuid.UUID         `json:"id"`
			Type       string            `json:"type"`
			TenantID   uuid.UUID         `json:"tenant_id"`
			OccurredAt time.Time         `json:"occurred_at"`
			Timestamp  time.Time         `json:"timestamp"`
			Data       map[string]string `json:"data"`
		}
		if err := json.Unmarshal(r.body, &env); err != nil {
			t.Fatal(err)
		}
		if env.ID != eventID || env.Type != "project.created" || env.TenantID != tenant || env.Data["name"] != "apollo" || env.OccurredAt.IsZero() {
			t.Errorf("request %d: body %s is not the event's envelope", i, r.body)
		}
		if !env.Timestamp.Equal(env.OccurredAt) {
			t.Errorf("request %d: body %s: timestamp is not occurred_at (Standard Webhooks' payload timestamp)", i, r.body)
		}
	}
	if got[0].header.Get("webhook-id") != got[1].header.Get("webhook-id") || string(got[0].body) != string(got[1].body) {
		t.Error("the retry is not the same message")
	}
	if err := webhook.Verify(ep.Secret, got[0].header, append(got[0].body, ' '), f.clock.Now(), time.Hour); err == nil {
		t.Error("Verify accepted a changed body")
	}

	ds, err := f.endpoints.Deliveries(ctx, tenant, ep.ID, httpx.Page{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Status != webhook.DeliverySucceeded || len(ds[0].Attempts) != 2 {
		t.Fatalf("deliveries %+v, want one succeeded with 2 attempts", ds)
	}
	a1, a2 := ds[0].Attempts[0], ds[0].Attempts[1]
	if *a1.StatusCode != 500 || a1.Error == nil || *a2.StatusCode != 200 || a2.Error != nil {
		t.Errorf("attempts %+v, %+v; want 500 with an error, then 200", a1, a2)
	}
	if f.deliverDue() != 0 {
		t.Error("a succeeded delivery was sent again")
	}
}

// Test 5: a URL resolving to 127.0.0.1 or 169.254.169.254 is refused at delivery unless
// private networks are allowed; the refusal is an attempt like any failure.
func TestDeliveryRefusesPrivateAddresses(t *testing.T) {
	ctx := context.Background()
	for _, allow := range []bool{false, true} {
		t.Run("allow="+strconv.FormatBool(allow), func(t *testing.T) {
			f := newFixture(t, allow)
			tenant := f.newTenant()
			rcv := newReceiver(t)
			_, port, _ := strings.Cut(strings.TrimPrefix(rcv.URL, "http://"), ":")
			urls := []string{"http://localhost:" + port + "/hook"} // a name, resolved when dialled
			if !allow {
				urls = append(urls, "http://169.254.169.254/latest/meta-data/")
			}
			for _, u := range urls {
				if _, err := f.endpoints.Create(ctx, tenant, webhook.EndpointInput{URL: u, EventTypes: []string{"project.created"}}); err != nil {
					t.Fatal(err)
				}
			}
			f.emit(tenant, "project.created", map[string]string{})
			if n := f.deliverDue(); n != len(urls) {
				t.Fatalf("sent %d deliveries, want %d", n, len(urls))
			}
			var errors []string
			rows, err := f.owner.Query(ctx, "SELECT coalesce(error, '') FROM webhook_attempts WHERE tenant_id = $1", tenant)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var e string
				rows.Scan(&e)
				errors = append(errors, e)
			}
			if allow {
				if len(rcv.requests()) != 1 || errors[0] != "" {
					t.Errorf("allowed: receiver got %d requests, attempt errors %q; want 1 and none", len(rcv.requests()), errors)
				}
				return
			}
			if len(rcv.requests()) != 0 {
				t.Errorf("the receiver on loopback got %d requests", len(rcv.requests()))
			}
			if len(errors) != 2 || !strings.HasPrefix(errors[0], "refused") || !strings.HasPrefix(errors[1], "refused") {
				t.Errorf("attempt errors %q, want two refusals", errors)
			}
		})
	}
}

// A delivery whose every attempt fails is marked failed. An endpoint failing without a break
// for DisableAfter is disabled (and says so in an event); its deliveries wait. Enabling it
// sends them at once; a delivery can be retried by hand.
func TestEndpointDisabledAndEnabled(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, true)
	f.deliverer.Concurrency = 1 // one delivery at a time, so the order of events is known
	tenant := f.newTenant()
	rcv := newReceiver(t, 500, 500, 500, 500)
	ep, err := f.endpoints.Create(ctx, tenant, webhook.EndpointInput{URL: rcv.URL, EventTypes: []string{"project.created"}})
	if err != nil {
		t.Fatal(err)
	}
	first := f.emit(tenant, "project.created", map[string]string{})
	for i := range 3 { // the schedule: an attempt, a minute's pause, another, a minute, the last
		if n := f.deliverDue(); n != 1 {
			t.Fatalf("attempt %d: sent %d deliveries, want 1", i+1, n)
		}
		f.clock.Advance(time.Minute)
	}
	got, err := f.endpoints.Get(ctx, tenant, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != webhook.StatusEnabled || got.FailingSince == nil {
		t.Fatalf("after three minutes of failures: %+v, want enabled and failing", got)
	}
	if n := f.deliverDue(); n != 0 {
		t.Fatalf("sent %d deliveries after the schedule ran out", n)
	}

	second := f.emit(tenant, "project.created", map[string]string{})
	f.clock.Advance(time.Hour)
	if n := f.deliverDue(); n != 1 {
		t.Fatalf("sent %d, want the second delivery", n)
	}
	got, _ = f.endpoints.Get(ctx, tenant, ep.ID)
	if got.Status != webhook.StatusDisabled || got.DisabledReason == nil || *got.DisabledReason != "failing" {
		t.Fatalf("after an hour of failures: %+v, want disabled, failing", got)
	}
	if n := f.count("SELECT count(*) FROM outbox WHERE tenant_id = $1 AND type = 'webhook_endpoint.disabled'", tenant); n != 1 {
		t.Errorf("%d webhook_endpoint.disabled events, want 1", n)
	}
	ds, _ := f.endpoints.Deliveries(ctx, tenant, ep.ID, httpx.Page{Limit: 10})
	if len(ds) != 2 || ds[0].EventID != second || ds[0].Status != webhook.DeliveryPending ||
		ds[1].EventID != first || ds[1].Status != webhook.DeliveryFailed || len(ds[1].Attempts) != 3 {
		t.Fatalf("deliveries %+v: want the second pending, the first failed after 3 attempts", ds)
	}
	f.clock.Advance(24 * time.Hour)
	f.relayAll()
	if n := f.deliverDue(); n != 0 {
		t.Fatalf("sent %d deliveries to a disabled endpoint", n)
	}
	if _, err := f.endpoints.Retry(ctx, tenant, ep.ID, ds[1].ID); err == nil {
		t.Error("retried a delivery of a disabled endpoint")
	}

	if got, err = f.endpoints.Enable(ctx, tenant, ep.ID); err != nil || got.Status != webhook.StatusEnabled || got.FailingSince != nil {
		t.Fatalf("Enable = %+v, %v", got, err)
	}
	if n := f.deliverDue(); n != 1 {
		t.Fatalf("after enabling, sent %d deliveries, want the pending one", n)
	}
	d, err := f.endpoints.Retry(ctx, tenant, ep.ID, ds[1].ID)
	if err != nil || d.Status != webhook.DeliveryPending || len(d.Attempts) != 3 {
		t.Fatalf("Retry = %+v, %v", d, err)
	}
	if n := f.deliverDue(); n != 1 {
		t.Fatalf("sent %d after the retry, want 1", n)
	}
	ds, _ = f.endpoints.Deliveries(ctx, tenant, ep.ID, httpx.Page{Limit: 10})
	for _, d := range ds {
		if d.Status != webhook.DeliverySucceeded {
			t.Errorf("delivery %s is %s, want succeeded", d.ID, d.Status)
		}
	}
	if len(rcv.requests()) != 6 {
		t.Errorf("receiver got %d requests, want 6 (3 failures of the first delivery and 1 of the second; then the second, and the first retried)", len(rcv.requests()))
	}
}

// Endpoints are checked before anything is sent: the scheme, credentials, and literal
// private addresses unless allowed.
func TestCreateChecksURL(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, false)
	tenant := f.newTenant()
	strict := *f.endpoints
	strict.AllowPrivate, strict.RequireHTTPS = false, true
	for _, tc := range []struct {
		url    string
		strict bool // refused in production
		dev    bool // refused with private networks allowed and http accepted
	}{
		{"https://hooks.example.com/in", false, false},
		{"http://hooks.example.com/in", true, false},
		{"https://127.0.0.1/in", true, false},
		{"https://169.254.169.254/latest/meta-data/", true, false},
		{"https://[::1]:8443/", true, false},
		{"https://10.1.2.3/", true, false},
		{"https://localhost/", true, false},
		{"https://user:pass@hooks.example.com/", true, true},
		{"ftp://hooks.example.com/", true, true},
		{"/relative", true, true},
	} {
		in := webhook.EndpointInput{URL: tc.url, EventTypes: []string{"*"}}
		if _, err := strict.Create(ctx, tenant, in); (err != nil) != tc.strict {
			t.Errorf("production: %s: err = %v, want refused=%v", tc.url, err, tc.strict)
		}
		if _, err := f.endpoints.Create(ctx, tenant, in); (err != nil) != tc.dev {
			t.Errorf("development: %s: err = %v, want refused=%v", tc.url, err, tc.dev)
		}
	}
}

// A tenant has at most Max endpoints (WEBHOOK_MAX_ENDPOINTS, 20 by default): one more is a
// conflict, and an operator's higher limit is honoured.
func TestEndpointsLimit(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, false)
	in := webhook.EndpointInput{URL: "https://hooks.example.com/in", EventTypes: []string{"*"}}
	for _, limit := range []int{0, 3} {
		eps := *f.endpoints
		eps.Max = limit
		want := limit
		if limit == 0 {
			want = webhook.DefaultMaxEndpoints
		}
		tenant := f.newTenant()
		for i := range want {
			if _, err := eps.Create(ctx, tenant, in); err != nil {
				t.Fatalf("Max %d: endpoint %d: %v", limit, i+1, err)
			}
		}
		if _, err := eps.Create(ctx, tenant, in); !errs.Is(err, errs.Conflict) {
			t.Errorf("Max %d: endpoint %d: err = %v, want a conflict", limit, want+1, err)
		}
		if _, err := eps.Create(ctx, f.newTenant(), in); err != nil {
			t.Errorf("Max %d: another tenant's first endpoint: %v", limit, err)
		}
	}
}

// A receiver answering 410 Gone wants no more: the endpoint is disabled ("gone", with an
// event), that delivery is not tried again, and the others wait for an enable.
func TestGoneDisablesEndpoint(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, true)
	tenant := f.newTenant()
	rcv := newReceiver(t, http.StatusGone)
	ep, err := f.endpoints.Create(ctx, tenant, webhook.EndpointInput{URL: rcv.URL, EventTypes: []string{"project.created"}})
	if err != nil {
		t.Fatal(err)
	}
	f.emit(tenant, "project.created", map[string]string{})
	if n := f.deliverDue(); n != 1 {
		t.Fatalf("sent %d deliveries, want 1", n)
	}
	got, err := f.endpoints.Get(ctx, tenant, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != webhook.StatusDisabled || got.DisabledReason == nil || *got.DisabledReason != "gone" {
		t.Fatalf("after a 410: %+v, want disabled, gone", got)
	}
	if n := f.count("SELECT count(*) FROM outbox WHERE tenant_id = $1 AND type = 'webhook_endpoint.disabled'", tenant); n != 1 {
		t.Errorf("%d webhook_endpoint.disabled events, want 1", n)
	}
	f.emit(tenant, "project.created", map[string]string{})
	f.clock.Advance(24 * time.Hour)
	if n := f.deliverDue(); n != 0 || len(rcv.requests()) != 1 {
		t.Fatalf("after the 410: sent %d more deliveries, receiver got %d requests; want none more", n, len(rcv.requests()))
	}
	ds, _ := f.endpoints.Deliveries(ctx, tenant, ep.ID, httpx.Page{Limit: 10})
	if len(ds) != 1 || ds[0].Status != webhook.DeliveryFailed || len(ds[0].Attempts) != 1 || *ds[0].Attempts[0].StatusCode != 410 {
		t.Fatalf("deliveries %+v: want the answered one failed after its one 410 attempt (the fan-out skips a disabled endpoint)", ds)
	}
}

// A 429 or 503 with Retry-After (seconds or an HTTP-date) puts the next attempt off that
// long when it is longer than the schedule's pause (a minute here), at most MaxRetryAfter.
func TestRetryAfterDelaysNextAttempt(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		status int
		value  func(now time.Time) string
		want   time.Duration
	}{
		{"seconds", http.StatusTooManyRequests, func(time.Time) string { return "120" }, 120 * time.Second},
		{"date", http.StatusServiceUnavailable, func(now time.Time) string { return now.Add(10 * time.Minute).UTC().Format(http.TimeFormat) }, 10 * time.Minute},
		{"shorter than the schedule", http.StatusTooManyRequests, func(time.Time) string { return "5" }, time.Minute},
		{"capped", http.StatusTooManyRequests, func(time.Time) string { return "86400" }, webhook.MaxRetryAfter},
		{"malformed", http.StatusServiceUnavailable, func(time.Time) string { return "soon" }, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, true)
			tenant := f.newTenant()
			rcv := newReceiver(t, tc.status)
			f.clock.Advance(time.Second - time.Duration(f.clock.Now().Nanosecond())) // HTTP-dates have whole seconds
			rcv.header = http.Header{"Retry-After": {tc.value(f.clock.Now())}}
			ep, err := f.endpoints.Create(ctx, tenant, webhook.EndpointInput{URL: rcv.URL, EventTypes: []string{"project.created"}})
			if err != nil {
				t.Fatal(err)
			}
			f.emit(tenant, "project.created", map[string]string{})
			now := f.clock.Now()
			if n := f.deliverDue(); n != 1 {
				t.Fatalf("sent %d deliveries, want 1", n)
			}
			ds, _ := f.endpoints.Deliveries(ctx, tenant, ep.ID, httpx.Page{Limit: 10})
			if len(ds) != 1 || ds[0].NextAttemptAt == nil || !ds[0].NextAttemptAt.Equal(now.Add(tc.want)) {
				t.Fatalf("deliveries %+v: want the next attempt at now+%s", ds, tc.want)
			}
			f.clock.Advance(tc.want - time.Second)
			if n := f.deliverDue(); n != 0 {
				t.Fatalf("sent %d deliveries before the receiver's Retry-After", n)
			}
			f.clock.Advance(time.Second)
			if n := f.deliverDue(); n != 1 || len(rcv.requests()) != 2 {
				t.Fatalf("at now+%s sent %d deliveries, want the retry", tc.want, n)
			}
		})
	}
}
