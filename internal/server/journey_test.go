package server_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/saasbase/saasbase/internal/billing/stripetest"
	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// TestJourney walks a newcomer's first hour through the public API, every answer checked
// against openapi.yaml: signup → API key → projects → events → usage → upcoming invoice →
// payment with a retried key → Stripe webhook → the tenant's webhook received → a flag
// flipped by the operator, seen over OFREP.
func TestJourney(t *testing.T) {
	fake := stripetest.NewFake(t)
	s := servertest.New(t, func(c *config.Config) {
		c.StripeSecretKey, c.StripeAPIURL, c.StripeWebhookSecret = "sk_test_123", fake.URL, "whsec_journey"
		c.WebhooksAllowPrivate = true // the receiver below listens on loopback
	})
	ctx, stop := context.WithCancel(context.Background())
	jobsDone := make(chan struct{})
	go func() {
		defer close(jobsDone)
		var wg sync.WaitGroup
		wg.Go(func() { s.App.RunReplica(ctx) })
		wg.Go(func() { s.App.RunBackground(ctx) })
		wg.Wait()
	}()
	t.Cleanup(func() { stop(); <-jobsDone })

	// The tenant's own webhook receiver.
	received := make(chan receivedHook, 16)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		received <- receivedHook{r.Header.Clone(), body}
	}))
	t.Cleanup(receiver.Close)
	do := func(method, path, token string, body any, header map[string]string, want int) *servertest.Response {
		t.Helper()
		res := s.Do(t, servertest.Request{Method: method, Path: path, Token: token, Body: body, Header: header})
		if res.Status != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, res.Status, res.Body, want)
		}
		return res
	}

	// Signup, then an API key for the machines.
	owner := s.Signup(t, "journey")
	var key struct{ Key string }
	do("POST", "/v1/api-keys", owner.Token, map[string]string{"name": "ci", "role": "admin"}, nil, 201).Decode(t, &key)

	// Projects, with the key.
	var p struct{ ID string }
	do("POST", "/v1/projects", key.Key, map[string]string{"name": "Apollo"}, map[string]string{"Idempotency-Key": "p-1"}, 201).Decode(t, &p)
	do("PATCH", "/v1/projects/"+p.ID, key.Key, map[string]string{"description": "to the moon"}, nil, 200)
	do("GET", "/v1/projects/"+p.ID, owner.Token, nil, nil, 200)

	// The event log shows what happened.
	var evs struct{ Data []struct{ Type string } }
	do("GET", "/v1/events", owner.Token, nil, nil, 200).Decode(t, &evs)
	var types []string
	for _, e := range evs.Data {
		types = append(types, e.Type)
	}
	if got := strings.Join(types, ","); got != "project.updated,project.created,user.created,tenant.created" {
		t.Fatalf("events %s", got)
	}

	// Usage, and the upcoming invoice it feeds.
	do("PUT", "/v1/admin/meters/journey_calls", s.PlatformToken(t), map[string]any{"event_type": "journey.call", "aggregation": "count"}, nil, 201)
	batch := make([]map[string]any, 10)
	for i := range batch {
		batch[i] = map[string]any{"specversion": "1.0", "id": fmt.Sprint("call-", i), "source": "journey", "type": "journey.call",
			"time": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), "data": map[string]any{}}
	}
	var ing struct{ Accepted, Duplicates int }
	do("POST", "/v1/usage/events", key.Key, batch, nil, 200).Decode(t, &ing)
	do("POST", "/v1/usage/events", key.Key, batch, nil, 200).Decode(t, &ing)
	if ing.Accepted != 0 || ing.Duplicates != 10 {
		t.Fatalf("resent batch: %+v", ing)
	}
	var inv struct {
		Currency string
		Total    int64
	}
	do("GET", "/v1/invoices/upcoming", owner.Token, nil, nil, 200).Decode(t, &inv)
	if inv.Currency != "usd" {
		t.Fatalf("upcoming invoice %+v", inv)
	}

	// A webhook endpoint for payment events; its secret is shown once.
	var endpoint struct{ Secret string }
	do("POST", "/v1/webhook-endpoints", owner.Token, map[string]any{"url": receiver.URL + "/hooks", "event_types": []string{"payment.succeeded"}}, nil, 201).Decode(t, &endpoint)

	// A payment, retried with the same key: one PaymentIntent.
	body := map[string]any{"amount": 4900, "currency": "usd"}
	first := do("POST", "/v1/payments", owner.Token, body, map[string]string{"Idempotency-Key": "order-42"}, 201)
	again := do("POST", "/v1/payments", owner.Token, body, map[string]string{"Idempotency-Key": "order-42"}, 201)
	if string(first.Body) != string(again.Body) || again.Header.Get("Idempotent-Replayed") != "true" || fake.Creates() != 1 {
		t.Fatalf("retried payment: replayed=%q, %d PaymentIntents", again.Header.Get("Idempotent-Replayed"), fake.Creates())
	}
	var pay struct {
		ID                    string
		StripePaymentIntentID string `json:"stripe_payment_intent_id"`
	}
	first.Decode(t, &pay)

	// Stripe says it succeeded.
	ev, _ := json.Marshal(map[string]any{"id": "evt_journey", "object": "event", "type": "payment_intent.succeeded", "api_version": "2023-10-16",
		"data": map[string]any{"object": map[string]any{"id": pay.StripePaymentIntentID, "object": "payment_intent", "status": "succeeded"}}})
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: ev, Secret: "whsec_journey", Timestamp: time.Now()})
	do("POST", "/v1/webhooks/stripe", "", signed.Payload, map[string]string{"Stripe-Signature": signed.Header}, 200)
	var got struct{ Status string }
	do("GET", "/v1/payments/"+pay.ID, owner.Token, nil, nil, 200).Decode(t, &got)
	if got.Status != "succeeded" {
		t.Fatalf("payment status %s after the webhook", got.Status)
	}

	// The tenant's receiver gets payment.succeeded, signed with the endpoint's secret.
	select {
	case hook := <-received:
		if !verifyStandardWebhook(endpoint.Secret, hook) || !strings.Contains(string(hook.body), `"payment.succeeded"`) {
			t.Fatalf("webhook %v %s does not verify or is not payment.succeeded", hook.header, hook.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook reached the tenant's receiver")
	}

	// The operator flips a flag; the tenant sees it over OFREP.
	flag := map[string]any{"type": "boolean", "variants": map[string]bool{"on": true, "off": false}, "default_variant": "off", "enabled": true}
	do("PUT", "/v1/admin/flags/journey-beta", s.PlatformToken(t), flag, nil, 201)
	ofrep := func() bool {
		var r struct{ Value bool }
		do("POST", "/ofrep/v1/evaluate/flags/journey-beta", owner.Token, map[string]any{"context": map[string]any{}}, nil, 200).Decode(t, &r)
		return r.Value
	}
	if ofrep() {
		t.Fatal("journey-beta is on before the operator turned it on")
	}
	flag["default_variant"] = "on"
	do("PUT", "/v1/admin/flags/journey-beta", s.PlatformToken(t), flag, nil, 200)
	deadline := time.Now().Add(5 * time.Second)
	for !ofrep() {
		if time.Now().After(deadline) {
			t.Fatal("the flag change never reached OFREP")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type receivedHook struct {
	header http.Header
	body   []byte
}

// verifyStandardWebhook checks a delivery as a receiver would, per Standard Webhooks:
// base64 HMAC-SHA256 over "id.timestamp.body" with the secret after its whsec_ prefix.
func verifyStandardWebhook(secret string, h receivedHook) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", h.header.Get("webhook-id"), h.header.Get("webhook-timestamp"), h.body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.header.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}
