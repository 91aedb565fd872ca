package stripetest

import (
	"errors"
	"strings"
	"testing"

	"github.com/stripe/stripe-go/v76"
)

// TestStartMock checks what StartMock's comment promises about stripe-mock, through
// stripe-go, from parallel tests sharing one process.
func TestStartMock(t *testing.T) {
	url := StartMock(t)
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("url = %q, want a loopback HTTP address", url)
	}

	t.Run("create", func(t *testing.T) {
		t.Parallel()
		if got := StartMock(t); got != url {
			t.Fatalf("second StartMock = %q, want the shared %q", got, url)
		}
		sc := newClient(url, "sk_test_123")
		params := &stripe.PaymentIntentParams{Amount: stripe.Int64(2000), Currency: stripe.String("usd")}
		params.SetIdempotencyKey("mock-create")
		params.AddMetadata("payment_id", "pay_1")
		pi, err := sc.PaymentIntents.New(params)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(pi.ID, "pi_") || pi.Amount != 2000 || pi.Currency != "usd" ||
			pi.Status != stripe.PaymentIntentStatusRequiresPaymentMethod {
			t.Fatalf("got %s amount %d %s status %s, want pi_… 2000 usd requires_payment_method",
				pi.ID, pi.Amount, pi.Currency, pi.Status)
		}
		if len(pi.Metadata) != 0 {
			t.Errorf("metadata = %v: stripe-mock now echoes metadata; update StartMock's comment", pi.Metadata)
		}
	})

	t.Run("no idempotency", func(t *testing.T) {
		t.Parallel()
		sc := newClient(url, "sk_test_123")
		var ids []string
		for range 2 {
			params := &stripe.PaymentIntentParams{Amount: stripe.Int64(2000), Currency: stripe.String("usd")}
			params.SetIdempotencyKey("mock-same-key")
			pi, err := sc.PaymentIntents.New(params)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, pi.ID)
		}
		if ids[0] == ids[1] {
			t.Fatalf("the same key answered the same id %s twice: stripe-mock now has idempotency; update StartMock's comment", ids[0])
		}
	})

	t.Run("never declines", func(t *testing.T) {
		t.Parallel()
		sc := newClient(url, "sk_test_123")
		pi, err := sc.PaymentIntents.New(&stripe.PaymentIntentParams{
			Amount: stripe.Int64(2000), Currency: stripe.String("usd"),
			PaymentMethod: stripe.String("pm_card_chargeDeclined"), Confirm: stripe.Bool(true),
		})
		if err != nil {
			t.Fatalf("err = %v: stripe-mock now declines; update StartMock's comment", err)
		}
		if pi.Status != stripe.PaymentIntentStatusRequiresPaymentMethod {
			t.Errorf("status = %s", pi.Status)
		}
	})

	t.Run("validates", func(t *testing.T) {
		t.Parallel()
		_, err := newClient(url, "sk_test_123").PaymentIntents.New(&stripe.PaymentIntentParams{Currency: stripe.String("usd")})
		var se *stripe.Error
		if !errors.As(err, &se) || se.HTTPStatusCode != 400 {
			t.Fatalf("create without amount: err = %v, want a 400", err)
		}
		_, err = newClient(url, "bogus").PaymentIntents.New(&stripe.PaymentIntentParams{Amount: stripe.Int64(1), Currency: stripe.String("usd")})
		if !errors.As(err, &se) || se.HTTPStatusCode != 401 {
			t.Fatalf("create with a bogus key: err = %v, want a 401", err)
		}
	})
}
