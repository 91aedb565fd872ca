package stripetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// clock is a settable clock for Fake.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// piParams is a PaymentIntent create for payment id paymentID under key.
func piParams(key, paymentID string, amount int64) *stripe.PaymentIntentParams {
	p := &stripe.PaymentIntentParams{
		Amount:      stripe.Int64(amount),
		Currency:    stripe.String("usd"),
		Description: stripe.String("invoice " + paymentID),
	}
	p.AddMetadata("payment_id", paymentID)
	p.SetIdempotencyKey(key)
	return p
}

// confirmed is piParams confirmed with payment method pm.
func confirmed(key, paymentID string, amount int64, pm string) *stripe.PaymentIntentParams {
	p := piParams(key, paymentID, amount)
	p.PaymentMethod, p.Confirm = stripe.String(pm), stripe.Bool(true)
	return p
}

// stripeError is err as the *stripe.Error stripe-go returns for an error answer.
func stripeError(t *testing.T, err error) *stripe.Error {
	t.Helper()
	var se *stripe.Error
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want a *stripe.Error", err, err)
	}
	return se
}

func TestFakeIdempotentCreate(t *testing.T) {
	f := NewFake(t)
	sc := newClient(f.URL, "sk_test_123")

	first, err := sc.PaymentIntents.New(piParams("key-1", "pay_1", 2000))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first.ID, "pi_") || !strings.HasPrefix(first.ClientSecret, first.ID+"_secret_") {
		t.Errorf("id %q, client_secret %q", first.ID, first.ClientSecret)
	}
	if first.Status != stripe.PaymentIntentStatusRequiresPaymentMethod || first.Metadata["payment_id"] != "pay_1" {
		t.Errorf("status %s, metadata %v", first.Status, first.Metadata)
	}

	// The same key and parameters: the very same answer, and nothing created.
	again, err := sc.PaymentIntents.New(piParams("key-1", "pay_1", 2000))
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID || !bytes.Equal(again.LastResponse.RawJSON, first.LastResponse.RawJSON) {
		t.Errorf("replay answered %s, want the body of %s again", again.LastResponse.RawJSON, first.ID)
	}
	if again.LastResponse.Header.Get("Idempotent-Replayed") != "true" {
		t.Error("replay without Idempotent-Replayed: true")
	}

	// The same key, other parameters: Stripe's idempotency error.
	_, err = sc.PaymentIntents.New(piParams("key-1", "pay_1", 2001))
	se := stripeError(t, err)
	var idemErr *stripe.IdempotencyError
	if se.HTTPStatusCode != 400 || se.Type != stripe.ErrorTypeIdempotency || !errors.As(err, &idemErr) ||
		!strings.HasPrefix(se.Msg, "Keys for idempotent requests can only be used with the same parameters they were first used with.") {
		t.Errorf("reuse with other parameters: %d %s %q", se.HTTPStatusCode, se.Type, se.Msg)
	}

	// The same key on another endpoint.
	rp := &stripe.RefundParams{PaymentIntent: stripe.String(first.ID)}
	rp.SetIdempotencyKey("key-1")
	_, err = sc.Refunds.New(rp)
	if se := stripeError(t, err); se.Type != stripe.ErrorTypeIdempotency || !strings.Contains(se.Msg, "same endpoint") {
		t.Errorf("reuse on /v1/refunds: %s %q", se.Type, se.Msg)
	}

	if f.Creates() != 1 || len(f.PaymentIntents()) != 1 {
		t.Errorf("Creates() = %d, PaymentIntents() = %v, want 1", f.Creates(), f.PaymentIntents())
	}
	if got := f.Requests("/v1/payment_intents"); got != 3 {
		t.Errorf("Requests = %d, want 3", got)
	}
	if got := f.IdempotencyKeys(); !slices.Equal(got, []string{"key-1", "key-1", "key-1"}) {
		t.Errorf("IdempotencyKeys() = %q", got)
	}
	if got := f.StripeVersions(); !slices.Equal(got, []string{stripe.APIVersion}) {
		t.Errorf("StripeVersions() = %q, want [%s]", got, stripe.APIVersion)
	}
	pi := f.PaymentIntents()[0]
	if pi.ID != first.ID || pi.Amount != 2000 || pi.Currency != "usd" || pi.Metadata["payment_id"] != "pay_1" || pi.IdempotencyKey != "key-1" {
		t.Errorf("PaymentIntents()[0] = %+v", pi)
	}
}

func TestFakeIdempotencyKeyExpires(t *testing.T) {
	f := NewFake(t)
	c := newClock()
	f.Now = c.Now
	sc := newClient(f.URL, "sk_test_123")

	first, err := sc.PaymentIntents.New(piParams("key-1", "pay_1", 2000))
	if err != nil {
		t.Fatal(err)
	}
	c.Add(24*time.Hour - time.Second)
	if again, err := sc.PaymentIntents.New(piParams("key-1", "pay_1", 2000)); err != nil || again.ID != first.ID {
		t.Fatalf("within 24 h: %v, %v; want a replay of %s", again, err, first.ID)
	}
	c.Add(time.Second)
	later, err := sc.PaymentIntents.New(piParams("key-1", "pay_1", 2000))
	if err != nil {
		t.Fatal(err)
	}
	if later.ID == first.ID || f.Creates() != 2 {
		t.Errorf("after 24 h: %s again, Creates() = %d; want a new PaymentIntent", later.ID, f.Creates())
	}
}

// TestFakeConcurrentSameKey: racing requests with one key create one PaymentIntent;
// each answers it, or 409 idempotency_key_in_use while the first is running.
func TestFakeConcurrentSameKey(t *testing.T) {
	f := NewFake(t)
	sc := newClient(f.URL, "sk_test_123")
	var wg sync.WaitGroup
	ids := make([]string, 16)
	errs := make([]error, 16)
	for i := range ids {
		wg.Go(func() {
			pi, err := sc.PaymentIntents.New(piParams("key-race", "pay_1", 2000))
			if err == nil {
				ids[i] = pi.ID
			}
			errs[i] = err
		})
	}
	wg.Wait()
	var want string
	for i, err := range errs {
		if err != nil {
			if se := stripeError(t, err); se.HTTPStatusCode != 409 || se.Code != stripe.ErrorCodeIdempotencyKeyInUse {
				t.Errorf("request %d: %v", i, err)
			}
			continue
		}
		if want == "" {
			want = ids[i]
		}
		if ids[i] != want {
			t.Errorf("request %d answered %s, another %s", i, ids[i], want)
		}
	}
	if f.Creates() != 1 {
		t.Errorf("Creates() = %d, want 1", f.Creates())
	}
}

func TestFakeDecline(t *testing.T) {
	for _, tc := range []struct{ pm, code, declineCode string }{
		{"pm_card_chargeDeclined", "card_declined", "generic_decline"},
		{"pm_card_visa_chargeDeclined", "card_declined", "generic_decline"},
		{"pm_card_visa_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"},
		{"pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"},
	} {
		t.Run(tc.pm, func(t *testing.T) {
			f := NewFake(t)
			sc := newClient(f.URL, "sk_test_123")

			_, err := sc.PaymentIntents.New(confirmed("key-1", "pay_1", 2000, tc.pm))
			se := stripeError(t, err)
			if se.HTTPStatusCode != 402 || se.Type != stripe.ErrorTypeCard ||
				string(se.Code) != tc.code || string(se.DeclineCode) != tc.declineCode {
				t.Errorf("got %d %s %s %s, want 402 card_error %s %s",
					se.HTTPStatusCode, se.Type, se.Code, se.DeclineCode, tc.code, tc.declineCode)
			}
			var cardErr *stripe.CardError
			if !errors.As(err, &cardErr) || string(cardErr.DeclineCode) != tc.declineCode {
				t.Errorf("Err = %#v, want a *stripe.CardError with decline code %s", se.Err, tc.declineCode)
			}
			pi := se.PaymentIntent
			if pi == nil {
				t.Fatal("no PaymentIntent in the error")
			}
			if !strings.HasPrefix(pi.ID, "pi_") || pi.Status != stripe.PaymentIntentStatusRequiresPaymentMethod ||
				pi.Amount != 2000 || pi.Metadata["payment_id"] != "pay_1" || pi.PaymentMethod != nil {
				t.Errorf("error's PaymentIntent: %s %s %d %v pm %v", pi.ID, pi.Status, pi.Amount, pi.Metadata, pi.PaymentMethod)
			}
			if lpe := pi.LastPaymentError; lpe == nil || string(lpe.Code) != tc.code || lpe.Type != stripe.ErrorTypeCard ||
				lpe.PaymentMethod == nil || lpe.PaymentMethod.ID != tc.pm {
				t.Errorf("last_payment_error = %+v", lpe)
			}
			if se.PaymentMethod == nil || se.PaymentMethod.ID != tc.pm || se.ChargeID == "" {
				t.Errorf("error's payment_method %+v, charge %q", se.PaymentMethod, se.ChargeID)
			}

			// Stripe created the PaymentIntent, and a retry with the key replays the 402.
			_, err = sc.PaymentIntents.New(confirmed("key-1", "pay_1", 2000, tc.pm))
			if again := stripeError(t, err); again.HTTPStatusCode != 402 || again.PaymentIntent == nil || again.PaymentIntent.ID != pi.ID {
				t.Errorf("replay: %v", err)
			}
			if f.Creates() != 1 {
				t.Errorf("Creates() = %d, want 1", f.Creates())
			}
			got, err := sc.PaymentIntents.Get(pi.ID, nil)
			if err != nil || got.Status != stripe.PaymentIntentStatusRequiresPaymentMethod {
				t.Errorf("retrieve: %v, %v", got, err)
			}
			if held := f.PaymentIntents()[0]; held.Status != "requires_payment_method" || held.PaymentMethod != tc.pm {
				t.Errorf("PaymentIntents()[0] = %+v", held)
			}
		})
	}
}

func TestFakeStatusesAndRetrieve(t *testing.T) {
	f := NewFake(t)
	sc := newClient(f.URL, "sk_test_123")

	paid, err := sc.PaymentIntents.New(confirmed("key-1", "pay_1", 2000, "pm_card_visa"))
	if err != nil {
		t.Fatal(err)
	}
	if paid.Status != stripe.PaymentIntentStatusSucceeded || paid.AmountReceived != 2000 || paid.LatestCharge == nil {
		t.Errorf("confirmed: status %s, received %d, latest charge %v", paid.Status, paid.AmountReceived, paid.LatestCharge)
	}
	got, err := sc.PaymentIntents.Get(paid.ID, nil)
	if err != nil || got.ID != paid.ID || got.Metadata["payment_id"] != "pay_1" || got.Status != stripe.PaymentIntentStatusSucceeded {
		t.Errorf("retrieve: %+v, %v", got, err)
	}

	unconfirmed := piParams("key-2", "pay_2", 2000)
	unconfirmed.PaymentMethod = stripe.String("pm_card_visa")
	if pi, err := sc.PaymentIntents.New(unconfirmed); err != nil || pi.Status != stripe.PaymentIntentStatusRequiresConfirmation {
		t.Errorf("with a payment method, not confirmed: %v, %v", pi, err)
	}
	manual := confirmed("key-3", "pay_3", 2000, "pm_card_visa")
	manual.CaptureMethod = stripe.String("manual")
	if pi, err := sc.PaymentIntents.New(manual); err != nil || pi.Status != stripe.PaymentIntentStatusRequiresCapture {
		t.Errorf("capture_method=manual: %v, %v", pi, err)
	}

	_, err = sc.PaymentIntents.Get("pi_missing", nil)
	if se := stripeError(t, err); se.HTTPStatusCode != 404 || se.Code != stripe.ErrorCodeResourceMissing {
		t.Errorf("missing: %v", err)
	}

	// A validation error stores nothing under the key: the corrected retry runs.
	bad := piParams("key-4", "pay_4", 2000)
	bad.Currency = nil
	_, err = sc.PaymentIntents.New(bad)
	if se := stripeError(t, err); se.HTTPStatusCode != 400 || se.Param != "currency" {
		t.Errorf("without currency: %v", err)
	}
	if _, err := sc.PaymentIntents.New(piParams("key-4", "pay_4", 2000)); err != nil {
		t.Errorf("the same key after a validation error: %v", err)
	}
}

func TestFakeRefundCap(t *testing.T) {
	f := NewFake(t)
	sc := newClient(f.URL, "sk_test_123")
	pi, err := sc.PaymentIntents.New(confirmed("key-pi", "pay_1", 2000, "pm_card_visa"))
	if err != nil {
		t.Fatal(err)
	}
	refund := func(key string, amount int64) (*stripe.Refund, error) {
		p := &stripe.RefundParams{PaymentIntent: stripe.String(pi.ID)}
		if amount > 0 {
			p.Amount = stripe.Int64(amount)
		}
		p.SetIdempotencyKey(key)
		return sc.Refunds.New(p)
	}

	first, err := refund("re-1", 1500)
	if err != nil || !strings.HasPrefix(first.ID, "re_") || first.Status != stripe.RefundStatusSucceeded || first.Amount != 1500 {
		t.Fatalf("refund 1500 of 2000: %+v, %v", first, err)
	}
	if again, err := refund("re-1", 1500); err != nil || again.ID != first.ID {
		t.Errorf("replay: %v, %v; want %s again", again, err, first.ID)
	}
	_, err = refund("re-2", 600)
	if se := stripeError(t, err); se.HTTPStatusCode != 400 || se.Type != stripe.ErrorTypeInvalidRequest || se.Code != stripe.ErrorCodeAmountTooLarge {
		t.Errorf("600 of the 500 left: %v", err)
	}
	rest, err := refund("re-3", 0)
	if err != nil || rest.Amount != 500 {
		t.Fatalf("refund the rest: %+v, %v", rest, err)
	}
	_, err = refund("re-4", 0)
	if se := stripeError(t, err); se.HTTPStatusCode != 400 || se.Code != stripe.ErrorCodeChargeAlreadyRefunded {
		t.Errorf("nothing left: %v", err)
	}

	unpaid, err := sc.PaymentIntents.New(piParams("key-unpaid", "pay_2", 2000))
	if err != nil {
		t.Fatal(err)
	}
	_, err = sc.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String(unpaid.ID)})
	if se := stripeError(t, err); se.HTTPStatusCode != 400 {
		t.Errorf("refund of an unpaid PaymentIntent: %v", err)
	}

	refunds := f.Refunds()
	if len(refunds) != 2 || refunds[0].Amount+refunds[1].Amount != 2000 || refunds[0].PaymentIntent != pi.ID {
		t.Errorf("Refunds() = %+v, want 1500 and 500 of %s", refunds, pi.ID)
	}
	if got := f.PaymentIntents()[0].AmountRefunded; got != 2000 {
		t.Errorf("AmountRefunded = %d", got)
	}
}

func TestFakeSearch(t *testing.T) {
	f := NewFake(t)
	c := newClock()
	f.Now = c.Now
	sc := newClient(f.URL, "sk_test_123")
	want := map[string]string{}
	for _, id := range []string{"pay_1", "pay_2", "pay_3"} {
		pi, err := sc.PaymentIntents.New(piParams("key-"+id, id, 2000))
		if err != nil {
			t.Fatal(err)
		}
		want[id] = pi.ID
	}
	search := func(query string) []string {
		t.Helper()
		it := sc.PaymentIntents.Search(&stripe.PaymentIntentSearchParams{SearchParams: stripe.SearchParams{Query: query}})
		var ids []string
		for it.Next() {
			ids = append(ids, it.PaymentIntent().ID)
		}
		if err := it.Err(); err != nil {
			t.Fatalf("search %s: %v", query, err)
		}
		return ids
	}

	if got := search("metadata['payment_id']:'pay_2'"); !slices.Equal(got, []string{want["pay_2"]}) {
		t.Errorf("by payment_id: %v, want [%s]", got, want["pay_2"])
	}
	if got := search(`metadata["payment_id"]:"pay_2" AND status:"requires_payment_method"`); !slices.Equal(got, []string{want["pay_2"]}) {
		t.Errorf("double quotes and AND: %v", got)
	}
	if got := search("metadata['payment_id']:'pay_9'"); len(got) != 0 {
		t.Errorf("no match: %v", got)
	}
	if got := search("currency:'usd'"); !slices.Equal(got, []string{want["pay_3"], want["pay_2"], want["pay_1"]}) {
		t.Errorf("newest first: %v", got)
	}
	it := sc.PaymentIntents.Search(&stripe.PaymentIntentSearchParams{SearchParams: stripe.SearchParams{Query: "amount>1"}})
	for it.Next() {
	}
	if se := stripeError(t, it.Err()); se.HTTPStatusCode != 400 || se.Param != "query" {
		t.Errorf("unsupported query: %v", it.Err())
	}

	// With a lag, as at Stripe, a new PaymentIntent is not found at once.
	f.SearchLag = time.Minute
	if got := search("metadata['payment_id']:'pay_1'"); len(got) != 0 {
		t.Errorf("found %v at once despite SearchLag", got)
	}
	c.Add(time.Minute)
	if got := search("metadata['payment_id']:'pay_1'"); !slices.Equal(got, []string{want["pay_1"]}) {
		t.Errorf("after SearchLag: %v", got)
	}
}

func TestFakeMeterEvents(t *testing.T) {
	f := NewFake(t)
	c := newClock()
	f.Now = c.Now
	sc := newClient(f.URL, "sk_test_123")
	event := func(key, identifier, value string) (*stripe.BillingMeterEvent, error) {
		p := &stripe.BillingMeterEventParams{
			EventName:  stripe.String("api_calls"),
			Identifier: stripe.String(identifier),
			Payload:    map[string]string{"stripe_customer_id": "cus_1", "value": value},
			Timestamp:  stripe.Int64(c.Now().Add(-time.Hour).Unix()),
		}
		p.SetIdempotencyKey(key)
		return sc.BillingMeterEvents.New(p)
	}

	first, err := event("key-1", "usage-1", "42")
	if err != nil || first.Identifier != "usage-1" || first.Payload["value"] != "42" {
		t.Fatalf("first: %+v, %v", first, err)
	}
	if _, err := event("key-1", "usage-1", "42"); err != nil {
		t.Errorf("the same key again, a replay: %v", err)
	}
	_, err = event("key-2", "usage-1", "42")
	se := stripeError(t, err)
	if se.HTTPStatusCode != 400 || se.Type != stripe.ErrorTypeInvalidRequest || se.Msg != "An event already exists with identifier usage-1." {
		t.Errorf("the same identifier under a new key: %d %s %q", se.HTTPStatusCode, se.Type, se.Msg)
	}
	if se.LastResponse.Header.Get("Stripe-Should-Retry") != "false" {
		t.Error("duplicate without Stripe-Should-Retry: false")
	}
	events := f.MeterEvents()
	if len(events) != 1 {
		t.Fatalf("MeterEvents() = %+v, want 1", events)
	}
	if e := events[0]; e.Identifier != "usage-1" || e.EventName != "api_calls" || e.Customer != "cus_1" || e.Value != "42" ||
		!e.Timestamp.Equal(c.Now().Add(-time.Hour)) || e.IdempotencyKey != "key-1" {
		t.Errorf("MeterEvents()[0] = %+v", e)
	}

	c.Add(24 * time.Hour)
	if _, err := event("key-3", "usage-1", "42"); err != nil {
		t.Errorf("the identifier 24 h later: %v", err)
	}

	p := &stripe.BillingMeterEventParams{
		EventName: stripe.String("api_calls"),
		Payload:   map[string]string{"stripe_customer_id": "cus_1", "value": "1"},
		Timestamp: stripe.Int64(c.Now().UnixMilli()),
	}
	_, err = sc.BillingMeterEvents.New(p)
	if se := stripeError(t, err); se.HTTPStatusCode != 400 || se.Param != "timestamp" {
		t.Errorf("timestamp in milliseconds: %v", err)
	}
}

func TestFakeCustomers(t *testing.T) {
	f := NewFake(t)
	sc := newClient(f.URL, "sk_test_123")
	params := func() *stripe.CustomerParams {
		p := &stripe.CustomerParams{Email: stripe.String("a@example.com")}
		p.AddMetadata("tenant_id", "t1")
		p.SetIdempotencyKey("cus-key")
		return p
	}
	first, err := sc.Customers.New(params())
	if err != nil || !strings.HasPrefix(first.ID, "cus_") || first.Metadata["tenant_id"] != "t1" {
		t.Fatalf("%+v, %v", first, err)
	}
	if again, err := sc.Customers.New(params()); err != nil || again.ID != first.ID {
		t.Errorf("replay: %v, %v", again, err)
	}
	if got, err := sc.Customers.Get(first.ID, nil); err != nil || got.Email != "a@example.com" {
		t.Errorf("retrieve: %v, %v", got, err)
	}
	if len(f.Customers()) != 1 {
		t.Errorf("Customers() = %+v", f.Customers())
	}
}

func TestFakeFaults(t *testing.T) {
	t.Run("refuse", func(t *testing.T) {
		f := NewFake(t)
		sc := newClient(f.URL, "sk_test_123")
		f.SetDown(true)
		_, err := sc.PaymentIntents.New(piParams("key-1", "pay_1", 2000))
		var se *stripe.Error
		if err == nil || errors.As(err, &se) {
			t.Fatalf("err = %v, want a transport error", err)
		}
		if f.Creates() != 0 || f.Requests("/v1/payment_intents") < 1 {
			t.Errorf("Creates() = %d, Requests = %d", f.Creates(), f.Requests("/v1/payment_intents"))
		}
		f.SetDown(false)
		if _, err := sc.PaymentIntents.New(piParams("key-1", "pay_1", 2000)); err != nil || f.Creates() != 1 {
			t.Errorf("back up, the same key: %v, Creates() = %d", err, f.Creates())
		}
	})

	t.Run("503", func(t *testing.T) {
		f := NewFake(t)
		sc := newClient(f.URL, "sk_test_123")
		f.SetMode(Mode503)
		_, err := sc.PaymentIntents.New(piParams("key-1", "pay_1", 2000))
		if se := stripeError(t, err); se.HTTPStatusCode != 503 || se.Type != stripe.ErrorTypeAPI {
			t.Errorf("err = %v", err)
		}
		if f.Creates() != 0 {
			t.Errorf("Creates() = %d", f.Creates())
		}
	})

	t.Run("fail next", func(t *testing.T) {
		f := NewFake(t)
		sc := newClient(f.URL, "sk_test_123")
		f.FailNext(2, http.StatusInternalServerError)
		for i := range 2 {
			_, err := sc.PaymentIntents.New(piParams("key-1", "pay_1", 2000))
			if se := stripeError(t, err); se.HTTPStatusCode != 500 {
				t.Errorf("request %d: %v", i, err)
			}
		}
		// Injected failures store nothing under the key: the retry creates.
		if _, err := sc.PaymentIntents.New(piParams("key-1", "pay_1", 2000)); err != nil {
			t.Fatal(err)
		}
		if f.Creates() != 1 || f.Requests("/v1/payment_intents") != 3 {
			t.Errorf("Creates() = %d, Requests = %d", f.Creates(), f.Requests("/v1/payment_intents"))
		}
	})

	t.Run("after create", func(t *testing.T) {
		f := NewFake(t)
		sc := newClient(f.URL, "sk_test_123")
		var calls atomic.Int32
		f.AfterCreate(func() {
			calls.Add(1)
			if f.Creates() != 1 { // the hook may use the fake
				t.Errorf("in the hook, Creates() = %d", f.Creates())
			}
		})
		first, err := sc.PaymentIntents.New(piParams("key-1", "pay_1", 2000))
		if err != nil {
			t.Fatal(err)
		}
		if again, err := sc.PaymentIntents.New(piParams("key-1", "pay_1", 2000)); err != nil || again.ID != first.ID {
			t.Errorf("replay: %v, %v", again, err)
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("hook ran %d times, want 1 (not for the replay)", n)
		}
	})

	// A client that gives up mid-flight: the PaymentIntent exists, and a retry with the
	// key gets it without creating another.
	t.Run("timeout mid-flight", func(t *testing.T) {
		f := NewFake(t)
		release := make(chan struct{})
		f.AfterCreate(func() { <-release })
		backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
			URL: stripe.String(f.URL), MaxNetworkRetries: stripe.Int64(0),
			HTTPClient:    &http.Client{Timeout: 100 * time.Millisecond},
			LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
		})
		impatient := client.New("sk_test_123", &stripe.Backends{API: backend})
		if _, err := impatient.PaymentIntents.New(piParams("key-1", "pay_1", 2000)); err == nil {
			t.Fatal("want a timeout")
		}
		close(release)
		pi, err := newClient(f.URL, "sk_test_123").PaymentIntents.New(piParams("key-1", "pay_1", 2000))
		if err != nil {
			t.Fatal(err)
		}
		if f.Creates() != 1 || pi.ID != f.PaymentIntents()[0].ID {
			t.Errorf("Creates() = %d, retry answered %s", f.Creates(), pi.ID)
		}
	})
}

func TestFakeAuth(t *testing.T) {
	f := NewFake(t)
	_, err := newClient(f.URL, "sk_live_123").PaymentIntents.New(piParams("key-1", "pay_1", 2000))
	if se := stripeError(t, err); se.HTTPStatusCode != 401 {
		t.Errorf("live key: %v", err)
	}
	res, err := http.Post(f.URL+"/v1/payment_intents", "application/x-www-form-urlencoded", strings.NewReader("amount=1&currency=usd"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 || f.Creates() != 0 {
		t.Errorf("no key: %d, Creates() = %d", res.StatusCode, f.Creates())
	}
}

// TestFakeWire checks bodies byte for byte where stripe-go would hide the shape.
func TestFakeWire(t *testing.T) {
	f := NewFake(t)
	do := func(method, path, key string, form url.Values) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, f.URL+path, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer sk_test_123")
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, body)
		}
		return res.StatusCode, v
	}

	form := url.Values{"amount": {"2000"}, "currency": {"usd"}, "metadata[payment_id]": {"pay_1"}}
	if status, _ := do("POST", "/v1/payment_intents", "k", form); status != 200 {
		t.Fatalf("create: %d", status)
	}
	form.Set("amount", "2001")
	status, body := do("POST", "/v1/payment_intents", "k", form)
	wantErr := map[string]any{"error": map[string]any{
		"type":    "idempotency_error",
		"message": "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than 'k' if you meant to execute a different request.",
	}}
	if got, _ := json.Marshal(body); status != 400 || string(got) != string(must(json.Marshal(wantErr))) {
		t.Errorf("mismatch: %d %s", status, got)
	}

	status, body = do("GET", "/v1/payment_intents/search?query="+url.QueryEscape("metadata['payment_id']:'pay_1'"), "", nil)
	data, _ := body["data"].([]any)
	if status != 200 || body["object"] != "search_result" || body["has_more"] != false ||
		body["url"] != "/v1/payment_intents/search" || len(data) != 1 {
		t.Errorf("search: %d %v", status, body)
	}

	form = url.Values{"payment_method": {"pm_card_chargeDeclined"}, "confirm": {"true"}, "amount": {"2000"}, "currency": {"usd"}}
	status, body = do("POST", "/v1/payment_intents", "", form)
	e, _ := body["error"].(map[string]any)
	pi, _ := e["payment_intent"].(map[string]any)
	if status != 402 || e["type"] != "card_error" || e["code"] != "card_declined" || e["decline_code"] != "generic_decline" ||
		pi["status"] != "requires_payment_method" || pi["last_payment_error"] == nil {
		t.Errorf("decline: %d %v", status, body)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
