package payments_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/saasbase/saasbase/internal/billing/payments"
	"github.com/saasbase/saasbase/internal/billing/stripetest"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, stripetest.StopMock)
}

type payment struct {
	ID                    string `json:"id"`
	Amount                int64  `json:"amount"`
	Status                string `json:"status"`
	StripePaymentIntentID string `json:"stripe_payment_intent_id"`
	ClientSecret          string `json:"client_secret"`
	AmountRefunded        int64  `json:"amount_refunded"`
}

func pay(t *testing.T, s *servertest.Server, token, key string, body any) *servertest.Response {
	t.Helper()
	h := map[string]string{}
	if key != "" {
		h["Idempotency-Key"] = key
	}
	return s.Do(t, servertest.Request{Method: "POST", Path: "/v1/payments", Token: token, Body: body, Header: h})
}

func paymentsOf(t *testing.T, s *servertest.Server, token string) []payment {
	t.Helper()
	var list struct{ Data []payment }
	s.Do(t, servertest.Request{Method: "GET", Path: "/v1/payments", Token: token}).Decode(t, &list)
	return list.Data
}

var card = map[string]any{"amount": 2000, "currency": "usd", "payment_method": "pm_card_visa"}

// Test 1 and 2: 100 concurrent POSTs with one key, spread over two API instances sharing the
// database: one PaymentIntent reaches Stripe, one payment row; every answer is the 201 or a
// 409; later retries replay the 201 byte for byte.
func TestConcurrentRetriesCreateOnePaymentIntent(t *testing.T) {
	fake := stripetest.NewFake(t)
	s1 := servertest.New(t, stripetest.Configure(fake.URL))
	s2 := servertest.New(t, stripetest.Configure(fake.URL))
	a := s1.Signup(t, "pay-race")

	var wg sync.WaitGroup
	answers := make([]*servertest.Response, 100)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := s1
			if i%2 == 1 {
				s = s2
			}
			answers[i] = pay(t, s, a.Token, "order-1", card)
		}()
	}
	wg.Wait()
	var first *servertest.Response
	for _, res := range answers {
		switch res.Status {
		case http.StatusCreated:
			if first != nil && string(first.Body) != string(res.Body) {
				t.Fatalf("two different 201s:\n%s\n%s", first.Body, res.Body)
			}
			first = res
		case http.StatusConflict:
			if code := res.Problem(t).Code; code != "idempotency_key_in_use" {
				t.Fatalf("409 %s", code)
			}
		default:
			t.Fatalf("answer %d %s", res.Status, res.Body)
		}
	}
	if first == nil {
		// Every answer was a 409 to a request still in flight: the retry finishes it.
		first = pay(t, s1, a.Token, "order-1", card)
	}
	for _, s := range []*servertest.Server{s1, s2} {
		again := pay(t, s, a.Token, "order-1", card)
		if again.Status != http.StatusCreated || string(again.Body) != string(first.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry: %d %s, want the 201 replayed", again.Status, again.Body)
		}
	}
	var p payment
	first.Decode(t, &p)
	if p.Status != "succeeded" || p.StripePaymentIntentID == "" || p.ClientSecret == "" {
		t.Fatalf("payment %+v", p)
	}
	if fake.Creates() != 1 || len(paymentsOf(t, s1, a.Token)) != 1 {
		t.Fatalf("%d PaymentIntents created, %d payments; want 1 and 1", fake.Creates(), len(paymentsOf(t, s1, a.Token)))
	}
}

// Test 3 and 4: the key is required and well-formed; reused with another body or route it is
// a 422 that reaches no Stripe; tenants A and B using one key value get two payments.
func TestPaymentKeys(t *testing.T) {
	fake := stripetest.NewFake(t)
	s := servertest.New(t, stripetest.Configure(fake.URL))
	a, b := s.Signup(t, "pay-a"), s.Signup(t, "pay-b")

	if res := pay(t, s, a.Token, "", card); res.Status != 400 || res.Problem(t).Code != "idempotency_key_missing" {
		t.Fatalf("no key: %d %s", res.Status, res.Body)
	}
	if res := pay(t, s, a.Token, strings.Repeat("k", 256), card); res.Status != 400 || res.Problem(t).Code != "idempotency_key_invalid" {
		t.Fatalf("256 characters: %d %s", res.Status, res.Body)
	}
	if res := pay(t, s, a.Token, "shared", card); res.Status != 201 {
		t.Fatalf("A: %d %s", res.Status, res.Body)
	}
	before := fake.Requests("/v1/payment_intents")
	other := map[string]any{"amount": 2500, "currency": "usd", "payment_method": "pm_card_visa"}
	if res := pay(t, s, a.Token, "shared", other); res.Status != 422 || res.Problem(t).Code != "idempotency_key_mismatch" {
		t.Fatalf("other body: %d %s", res.Status, res.Body)
	}
	var p payment
	pay(t, s, a.Token, "shared", card).Decode(t, &p)
	res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/payments/" + p.ID + "/refunds", Token: a.Token,
		Body: card, Header: map[string]string{"Idempotency-Key": "shared"}})
	if res.Status != 422 {
		t.Fatalf("other route: %d %s", res.Status, res.Body)
	}
	if got := fake.Requests("/v1/payment_intents"); got != before {
		t.Fatalf("a mismatch reached Stripe: %d requests, want %d", got, before)
	}
	if res := pay(t, s, b.Token, "shared", card); res.Status != 201 || res.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("B with A's key value: %d %v", res.Status, res.Header)
	}
	if fake.Creates() != 2 {
		t.Fatalf("%d PaymentIntents, want 2 (one per tenant)", fake.Creates())
	}
	// Another tenant's (or anyone's) Stripe customer is refused: the Stripe account is shared.
	res = pay(t, s, a.Token, "foreign-customer", map[string]any{"amount": 100, "currency": "usd", "customer": "cus_someone_else"})
	if p := res.Problem(t); res.Status != 400 || !p.Field("customer") {
		t.Fatalf("foreign customer: %d %s", res.Status, res.Body)
	}
}

// Test 5: a fault after Stripe answered and before our commit. The retry resumes, Stripe sees
// the same idempotency key again, and there is one PaymentIntent in the end, with a 201.
func TestFaultAfterStripeAnsweredResumes(t *testing.T) {
	fake := stripetest.NewFake(t)
	s := servertest.New(t, stripetest.Configure(fake.URL))
	a := s.Signup(t, "pay-fault")
	crashed := false
	payments.SetAfterStripe(s.App.Payments, func() error {
		if !crashed {
			crashed = true
			return errors.New("injected: the process died before committing Stripe's answer")
		}
		return nil
	})
	if res := pay(t, s, a.Token, "order-fault", card); res.Status != http.StatusInternalServerError {
		t.Fatalf("faulted attempt: %d %s", res.Status, res.Body)
	}
	res := pay(t, s, a.Token, "order-fault", card)
	if res.Status != http.StatusCreated {
		t.Fatalf("retry: %d %s", res.Status, res.Body)
	}
	keys := fake.IdempotencyKeys()
	if fake.Creates() != 1 || len(keys) != 2 || keys[0] != keys[1] {
		t.Fatalf("creates %d with keys %v: want one PaymentIntent, asked twice under one key", fake.Creates(), keys)
	}
	var p payment
	res.Decode(t, &p)
	if p.StripePaymentIntentID != fake.PaymentIntents()[0].ID || p.Status != "succeeded" {
		t.Fatalf("payment %+v, Stripe %+v", p, fake.PaymentIntents()[0])
	}
}

// Test 6: the completer finishes a payment abandoned mid-way, without a second PaymentIntent;
// the client's retry then answers from the finished work.
func TestCompleterFinishesAbandonedPayment(t *testing.T) {
	fake := stripetest.NewFake(t)
	s := servertest.New(t, stripetest.Configure(fake.URL))
	a := s.Signup(t, "pay-abandon")
	payments.SetAfterStripe(s.App.Payments, func() error { return errors.New("injected crash") })
	if res := pay(t, s, a.Token, "order-abandoned", card); res.Status != 500 {
		t.Fatalf("abandoned attempt: %d %s", res.Status, res.Body)
	}
	payments.SetAfterStripe(s.App.Payments, nil)
	if got := paymentsOf(t, s, a.Token); len(got) != 1 || got[0].Status != "pending" {
		t.Fatalf("before the completer: %+v", got)
	}

	s.App.Idempotency.LockTimeout = time.Millisecond // the key counts as abandoned at once
	completer := s.App.Completer
	n, err := completer.Run(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("completer: %d, %v; want 1 finished", n, err)
	}
	got := paymentsOf(t, s, a.Token)
	if len(got) != 1 || got[0].Status != "succeeded" || got[0].StripePaymentIntentID == "" || fake.Creates() != 1 {
		t.Fatalf("after the completer: %+v, %d creates", got, fake.Creates())
	}
	if n, _ := completer.Run(context.Background()); n != 0 {
		t.Fatalf("the completer ran again on %d keys", n)
	}
	res := pay(t, s, a.Token, "order-abandoned", card)
	if res.Status != 201 || fake.Creates() != 1 {
		t.Fatalf("client retry: %d %s, %d creates", res.Status, res.Body, fake.Creates())
	}
}

// Test 7: a decline is a 402, stored and replayed without a second Stripe call. Stripe down
// is a 503 that is not stored: the retry reaches Stripe again.
func TestDeclineAndOutage(t *testing.T) {
	fake := stripetest.NewFake(t)
	s := servertest.New(t, stripetest.Configure(fake.URL))
	a := s.Signup(t, "pay-decline")
	declined := map[string]any{"amount": 500, "currency": "usd", "payment_method": "pm_card_chargeDeclined"}
	first := pay(t, s, a.Token, "declined", declined)
	if first.Status != http.StatusPaymentRequired || first.Problem(t).Code != "payment_declined" {
		t.Fatalf("decline: %d %s", first.Status, first.Body)
	}
	again := pay(t, s, a.Token, "declined", declined)
	if again.Status != 402 || string(again.Body) != string(first.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replayed decline: %d %s", again.Status, again.Body)
	}
	if n := fake.Requests("/v1/payment_intents"); n != 1 {
		t.Fatalf("%d calls to Stripe, want 1", n)
	}
	if got := paymentsOf(t, s, a.Token); len(got) != 1 || got[0].Status != "failed" {
		t.Fatalf("declined payment: %+v", got)
	}

	fake.SetMode(stripetest.Mode503)
	if res := pay(t, s, a.Token, "outage", card); res.Status != 503 || res.Problem(t).Code != "payment_provider_unavailable" {
		t.Fatalf("Stripe down: %d %s", res.Status, res.Body)
	}
	fake.SetMode(stripetest.ModeUp)
	res := pay(t, s, a.Token, "outage", card)
	if res.Status != 201 || res.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("after the outage: %d %s", res.Status, res.Body)
	}
	if got := paymentsOf(t, s, a.Token); len(got) != 2 {
		t.Fatalf("%d payments, want 2: the outage must not leave a second row", len(got))
	}
}

// Refunds never give back more than was paid; a full refund makes the payment refunded.
func TestRefunds(t *testing.T) {
	fake := stripetest.NewFake(t)
	s := servertest.New(t, stripetest.Configure(fake.URL))
	a := s.Signup(t, "pay-refund")
	var p payment
	pay(t, s, a.Token, "to-refund", card).Decode(t, &p)
	refund := func(key string, body any) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "POST", Path: "/v1/payments/" + p.ID + "/refunds", Token: a.Token,
			Body: body, Header: map[string]string{"Idempotency-Key": key}})
	}
	if res := refund("r1", map[string]int{"amount": 1500}); res.Status != 201 {
		t.Fatalf("partial refund: %d %s", res.Status, res.Body)
	}
	if res := refund("r1", map[string]int{"amount": 1500}); res.Status != 201 || res.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retried refund: %d %s", res.Status, res.Body)
	}
	if res := refund("r2", map[string]int{"amount": 600}); res.Status != 400 {
		t.Fatalf("refund over what is left: %d %s", res.Status, res.Body)
	}
	if res := refund("r3", map[string]any{}); res.Status != 201 {
		t.Fatalf("refund of the rest: %d %s", res.Status, res.Body)
	}
	s.Do(t, servertest.Request{Method: "GET", Path: "/v1/payments/" + p.ID, Token: a.Token}).Decode(t, &p)
	if p.Status != "refunded" || p.AmountRefunded != 2000 || len(fake.Refunds()) != 2 {
		t.Fatalf("after refunds: %+v, %d Stripe refunds", p, len(fake.Refunds()))
	}
	if res := refund("r4", map[string]any{}); res.Status != 409 {
		t.Fatalf("refund of a refunded payment: %d %s", res.Status, res.Body)
	}
}

// signed builds a Stripe event for a PaymentIntent and its Stripe-Signature.
func signed(t *testing.T, eventID, typ, intentID, status string, at time.Time) ([]byte, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"id": eventID, "object": "event", "type": typ, "api_version": "2023-10-16", "created": at.Unix(),
		"data": map[string]any{"object": map[string]any{"id": intentID, "object": "payment_intent", "status": status}},
	})
	return body, sign(body, at)
}

// sign answers the Stripe-Signature of body at the time at, under the test server's secret.
func sign(body []byte, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: stripetest.WebhookSecret, Timestamp: at}).Header
}

func deliver(t *testing.T, s *servertest.Server, body []byte, sig string) *servertest.Response {
	return s.Do(t, servertest.Request{Method: "POST", Path: "/v1/webhooks/stripe", Body: body, Header: map[string]string{"Stripe-Signature": sig}})
}

// Test 8: one signed event delivered 5 times concurrently takes effect once, all answered 2xx;
// a bad signature or a stale timestamp is a 400; succeeded then a late processing stays
// succeeded.
func TestStripeWebhooks(t *testing.T) {
	fake := stripetest.NewFake(t)
	s := servertest.New(t, stripetest.Configure(fake.URL))
	a := s.Signup(t, "pay-hook")
	var p payment
	res := pay(t, s, a.Token, "hooked", map[string]any{"amount": 900, "currency": "usd"}) // no method: pending
	res.Decode(t, &p)
	if p.Status != "pending" {
		t.Fatalf("payment without a method: %+v", p)
	}

	body, sig := signed(t, "evt_succeeded_1", "payment_intent.succeeded", p.StripePaymentIntentID, "succeeded", time.Now())
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res := deliver(t, s, body, sig); res.Status != 200 {
				t.Errorf("delivery: %d %s", res.Status, res.Body)
			}
		}()
	}
	wg.Wait()
	var evs struct{ Data []struct{ Type string } }
	s.Do(t, servertest.Request{Method: "GET", Path: "/v1/events?type=payment.succeeded", Token: a.Token}).Decode(t, &evs)
	if len(evs.Data) != 1 {
		t.Fatalf("%d payment.succeeded events after 5 deliveries, want 1", len(evs.Data))
	}

	late, lateSig := signed(t, "evt_processing_late", "payment_intent.processing", p.StripePaymentIntentID, "processing", time.Now())
	if res := deliver(t, s, late, lateSig); res.Status != 200 {
		t.Fatalf("late event: %d %s", res.Status, res.Body)
	}
	s.Do(t, servertest.Request{Method: "GET", Path: "/v1/payments/" + p.ID, Token: a.Token}).Decode(t, &p)
	if p.Status != "succeeded" {
		t.Fatalf("status %s after a late processing event, want succeeded", p.Status)
	}

	tampered := []byte(strings.Replace(string(body), "succeeded", "canceled", 1))
	if res := deliver(t, s, tampered, sig); res.Status != 400 {
		t.Fatalf("bad signature: %d %s", res.Status, res.Body)
	}
	stale, staleSig := signed(t, "evt_stale", "payment_intent.canceled", p.StripePaymentIntentID, "canceled", time.Now().Add(-6*time.Minute))
	if res := deliver(t, s, stale, staleSig); res.Status != 400 {
		t.Fatalf("stale timestamp: %d %s", res.Status, res.Body)
	}
	if res := deliver(t, s, body, "t=1,v1=deadbeef"); res.Status != 400 {
		t.Fatalf("garbage signature: %d %s", res.Status, res.Body)
	}
}

// The signature is verified before the body is parsed: a verified event that does not parse
// is a 400 saying so, never that it does not verify; a verified event of a shape this service
// does not act on, such as a v2 thin event (no data.object), is a 200 and ignored. A bad
// signature and a stale timestamp are still a 400 naming the signature.
func TestStripeWebhookParsesOnlyWhatVerifies(t *testing.T) {
	s := servertest.New(t, stripetest.Configure(stripetest.NewFake(t).URL))
	now := time.Now()
	const badSignature = "does not verify"

	for name, body := range map[string]string{
		"not JSON":      `{"id": "evt_1", "object": "event",`,
		"not an object": `["evt_1"]`,
		"a wrongly typed field": `{"id": "evt_2", "object": "event", "type": "payment_intent.succeeded", "created": "yesterday",
			"data": {"object": {"id": "pi_1", "object": "payment_intent", "status": "succeeded"}}}`,
	} {
		res := deliver(t, s, []byte(body), sign([]byte(body), now))
		if p := res.Problem(t); res.Status != 400 || p.Code != "validation_failed" ||
			!strings.Contains(p.Detail, "does not parse") || strings.Contains(p.Detail, badSignature) {
			t.Errorf("%s, validly signed: %d %s, want 400 saying it does not parse", name, res.Status, res.Body)
		}
	}

	for name, body := range map[string]string{
		"v2 thin event": `{"id": "evt_test_65R8", "object": "v2.core.event", "type": "v1.billing.meter.error_report_triggered",
			"livemode": false, "created": "2024-09-17T06:20:52.246Z",
			"related_object": {"id": "mtr_test_61R8", "type": "billing.meter", "url": "/v1/billing/meters/mtr_test_61R8"}}`,
		"unknown type": `{"id": "evt_3", "object": "event", "type": "customer.created", "api_version": "2023-10-16",
			"created": 1700000000, "data": {"object": {"id": "cus_1", "object": "customer"}}}`,
		"a known type without data.object": `{"id": "evt_4", "object": "event", "type": "payment_intent.succeeded", "created": 1700000000, "data": {}}`,
	} {
		if res := deliver(t, s, []byte(body), sign([]byte(body), now)); res.Status != 200 {
			t.Errorf("%s, validly signed: %d %s, want 200 and ignored", name, res.Status, res.Body)
		}
	}

	body := []byte("not JSON, and not signed by Stripe")
	for name, sig := range map[string]string{
		"bad signature":   "t=" + strconv.FormatInt(now.Unix(), 10) + ",v1=deadbeef",
		"stale timestamp": sign(body, now.Add(-6*time.Minute)),
		"no signature":    "",
	} {
		res := deliver(t, s, body, sig)
		if p := res.Problem(t); res.Status != 400 || !strings.Contains(p.Detail, badSignature) {
			t.Errorf("%s: %d %s, want 400 saying it does not verify", name, res.Status, res.Body)
		}
	}
}

// The wire: against stripe-mock v0.203.0 a payment is created through the real Stripe API
// shapes (stripe-mock is stateless: it answers requires_payment_method, so pending).
func TestPaymentAgainstStripeMock(t *testing.T) {
	s := servertest.New(t, stripetest.Configure(stripetest.StartMock(t)))
	a := s.Signup(t, "pay-mock")
	res := pay(t, s, a.Token, "mock-1", map[string]any{"amount": 2000, "currency": "usd", "description": "wire test"})
	if res.Status != 201 {
		t.Fatalf("create against stripe-mock: %d %s", res.Status, res.Body)
	}
	var p payment
	res.Decode(t, &p)
	if !strings.HasPrefix(p.StripePaymentIntentID, "pi_") || p.ClientSecret == "" {
		t.Fatalf("payment %+v", p)
	}
}

// Without a Stripe key the payment endpoints answer 503 saying so, and the rest works.
func TestPaymentsDisabledWithoutKey(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "pay-off")
	res := pay(t, s, a.Token, "off", card)
	if res.Status != 503 || !strings.Contains(res.Problem(t).Detail, "STRIPE_SECRET_KEY") {
		t.Fatalf("no key: %d %s", res.Status, res.Body)
	}
	if res := s.Do(t, servertest.Request{Method: "GET", Path: "/v1/payments", Token: a.Token}); res.Status != 200 {
		t.Fatalf("list: %d", res.Status)
	}

}

// Past Stripe's 24-hour key retention, a resumed payment finds the PaymentIntent an earlier
// attempt created (by our payment id in its metadata) instead of creating a second one.
func TestResumeAfterStripeForgotTheKey(t *testing.T) {
	fake := stripetest.NewFake(t)
	fake.IdempotencyRetention = time.Nanosecond // Stripe has forgotten every key
	s := servertest.New(t, stripetest.Configure(fake.URL))
	a := s.Signup(t, "pay-24h")
	payments.SetAfterStripe(s.App.Payments, func() error { return errors.New("injected crash") })
	if res := pay(t, s, a.Token, "old-order", card); res.Status != 500 {
		t.Fatalf("crashed attempt: %d %s", res.Status, res.Body)
	}
	payments.SetAfterStripe(s.App.Payments, nil)
	// A day passes.
	if _, err := pgtest.Owner(t).Exec(context.Background(),
		"UPDATE idempotency_keys SET created_at = created_at - interval '25 hours' WHERE key = 'old-order'"); err != nil {
		t.Fatal(err)
	}
	res := pay(t, s, a.Token, "old-order", card)
	if res.Status != 201 {
		t.Fatalf("resumed a day later: %d %s", res.Status, res.Body)
	}
	var p payment
	res.Decode(t, &p)
	if fake.Creates() != 1 || p.StripePaymentIntentID != fake.PaymentIntents()[0].ID {
		t.Fatalf("%d PaymentIntents, payment linked to %s; want the first one adopted", fake.Creates(), p.StripePaymentIntentID)
	}
}
