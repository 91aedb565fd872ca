package payments

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/saasbase/saasbase/internal/platform/errs"
)

// Stripe is the part of Stripe the service uses, through stripe-go. Every call that creates
// something carries an idempotency key of ours, derived from our own stored idempotency key,
// never stripe-go's random default: that is what makes a retry after a crash safe.
type Stripe struct {
	api *client.API
}

// NewStripe builds a client; url points at stripe-mock in development ("" for Stripe). Retries
// are ours to make (from recovery points), so stripe-go makes none.
func NewStripe(secretKey, url string, transport http.RoundTripper) *Stripe {
	cfg := &stripe.BackendConfig{
		MaxNetworkRetries: stripe.Int64(0),
		HTTPClient:        &http.Client{Timeout: 15 * time.Second, Transport: transport},
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if url != "" {
		cfg.URL = stripe.String(url)
	}
	return &Stripe{api: client.New(secretKey, &stripe.Backends{
		API:     stripe.GetBackendWithConfig(stripe.APIBackend, cfg),
		Connect: stripe.GetBackendWithConfig(stripe.ConnectBackend, cfg),
		Uploads: stripe.GetBackendWithConfig(stripe.UploadsBackend, cfg),
	})}
}

var errStripeUnavailable = errs.E(errs.Unavailable, "payment_provider_unavailable", "the payment provider cannot be reached; retry with the same Idempotency-Key")

// errDeclined is a card decline, carrying the PaymentIntent Stripe created for it.
type errDeclined struct {
	intent *stripe.PaymentIntent
	code   string
}

func (e *errDeclined) Error() string { return "card declined: " + e.code }

// classify turns a Stripe failure into: a decline (the card said no), a client error (our
// request was wrong: never retried), or unavailability (network, 5xx, 429: retry later).
func classify(err error) error {
	var se *stripe.Error
	if !errors.As(err, &se) {
		return errs.Wrap(err, errs.Unavailable, "payment_provider_unavailable", errStripeUnavailable.Detail)
	}
	switch {
	case se.Type == stripe.ErrorTypeCard:
		code := string(se.DeclineCode)
		if code == "" {
			code = string(se.Code)
		}
		return &errDeclined{intent: se.PaymentIntent, code: code}
	case se.HTTPStatusCode >= 500 || se.HTTPStatusCode == http.StatusTooManyRequests || se.HTTPStatusCode == 0:
		return errs.Wrap(err, errs.Unavailable, "payment_provider_unavailable", errStripeUnavailable.Detail)
	case se.Type == stripe.ErrorTypeIdempotency:
		return errs.Wrap(err, errs.Internal, "internal", "") // our keys never change parameters: a bug
	}
	field := se.Param
	if field == "" {
		field = "body"
	}
	return errs.Field(field, "rejected by the payment provider: "+se.Msg)
}

// intentParams is what a PaymentIntent is created from.
type intentParams struct {
	IdempotencyKey string
	Amount         int64
	Currency       string
	Description    string
	Customer       string
	PaymentMethod  string
	Metadata       map[string]string
}

// CreatePaymentIntent creates (or, under the same idempotency key, returns again) a
// PaymentIntent, confirming it at once when a payment method is given.
func (s *Stripe) CreatePaymentIntent(ctx context.Context, in intentParams) (*stripe.PaymentIntent, error) {
	p := &stripe.PaymentIntentParams{
		Amount:   stripe.Int64(in.Amount),
		Currency: stripe.String(in.Currency),
	}
	p.Context = ctx
	p.SetIdempotencyKey(in.IdempotencyKey)
	if in.Description != "" {
		p.Description = stripe.String(in.Description)
	}
	if in.Customer != "" {
		p.Customer = stripe.String(in.Customer)
	}
	if in.PaymentMethod != "" {
		p.PaymentMethod = stripe.String(in.PaymentMethod)
		p.Confirm = stripe.Bool(true)
		// Server-side confirmation: no redirect-based methods, so no return_url is needed.
		p.AutomaticPaymentMethods = &stripe.PaymentIntentAutomaticPaymentMethodsParams{
			Enabled: stripe.Bool(true), AllowRedirects: stripe.String("never"),
		}
	}
	for k, v := range in.Metadata {
		p.AddMetadata(k, v)
	}
	pi, err := s.api.PaymentIntents.New(p)
	if err != nil {
		return nil, classify(err)
	}
	return pi, nil
}

// FindPaymentIntent looks a PaymentIntent up by our payment id in its metadata: how the
// completer reconciles after Stripe has forgotten an idempotency key (24 h).
func (s *Stripe) FindPaymentIntent(ctx context.Context, paymentID string) (*stripe.PaymentIntent, error) {
	p := &stripe.PaymentIntentSearchParams{}
	p.Context = ctx
	p.Query = fmt.Sprintf("metadata['payment_id']:'%s'", paymentID)
	it := s.api.PaymentIntents.Search(p)
	if it.Next() {
		return it.PaymentIntent(), nil
	}
	if err := it.Err(); err != nil {
		return nil, classify(err)
	}
	return nil, nil
}

// CreateRefund refunds amount of a PaymentIntent.
func (s *Stripe) CreateRefund(ctx context.Context, idempotencyKey, intentID string, amount int64, refundID string) (*stripe.Refund, error) {
	p := &stripe.RefundParams{PaymentIntent: stripe.String(intentID), Amount: stripe.Int64(amount)}
	p.Context = ctx
	p.SetIdempotencyKey(idempotencyKey)
	p.AddMetadata("refund_id", refundID)
	r, err := s.api.Refunds.New(p)
	if err != nil {
		return nil, classify(err)
	}
	return r, nil
}

// intentStatus maps a PaymentIntent's status to ours.
func intentStatus(s stripe.PaymentIntentStatus) string {
	switch s {
	case stripe.PaymentIntentStatusSucceeded:
		return StatusSucceeded
	case stripe.PaymentIntentStatusProcessing, stripe.PaymentIntentStatusRequiresCapture:
		return StatusProcessing
	case stripe.PaymentIntentStatusCanceled:
		return StatusCanceled
	}
	return StatusPending // requires_payment_method, requires_confirmation, requires_action
}

// CreateCustomer creates the Stripe customer of a tenant; the idempotency key comes from the
// tenant id, so racing replicas create one.
func (s *Stripe) CreateCustomer(ctx context.Context, tenantID, name string) (string, error) {
	p := &stripe.CustomerParams{Name: stripe.String(name)}
	p.Context = ctx
	p.SetIdempotencyKey("saasbase-cus-" + tenantID)
	p.AddMetadata("tenant_id", tenantID)
	c, err := s.api.Customers.New(p)
	if err != nil {
		return "", classify(err)
	}
	return c.ID, nil
}

// ErrMeterEventExists is Stripe's answer to an identifier it has already seen (24 h).
var ErrMeterEventExists = errors.New("payments: meter event identifier already exists")

// SendMeterEvent reports usage as a Billing Meter Event. Its identifier is deterministic, so
// Stripe drops a repeat within its 24-hour window.
func (s *Stripe) SendMeterEvent(ctx context.Context, eventName, identifier, customer string, value string, at time.Time) error {
	p := &stripe.BillingMeterEventParams{
		EventName:  stripe.String(eventName),
		Identifier: stripe.String(identifier),
		Payload:    map[string]string{"stripe_customer_id": customer, "value": value},
		Timestamp:  stripe.Int64(at.Unix()),
	}
	p.Context = ctx
	p.SetIdempotencyKey("saasbase-me-" + identifier)
	_, err := s.api.BillingMeterEvents.New(p)
	var se *stripe.Error
	if errors.As(err, &se) && se.HTTPStatusCode == http.StatusBadRequest && strings.Contains(se.Msg, "already exists") {
		return ErrMeterEventExists
	}
	if err != nil {
		return classify(err)
	}
	return nil
}

// DeleteCustomer deletes a Stripe customer (a purged tenant's). A customer Stripe no longer
// has counts as deleted, so a purge that stopped after this call can run it again.
func (s *Stripe) DeleteCustomer(ctx context.Context, id string) error {
	p := &stripe.CustomerParams{}
	p.Context = ctx
	_, err := s.api.Customers.Del(id, p)
	var se *stripe.Error
	if errors.As(err, &se) && (se.Code == stripe.ErrorCodeResourceMissing || se.HTTPStatusCode == http.StatusNotFound) {
		return nil
	}
	if err != nil {
		return classify(err)
	}
	return nil
}
