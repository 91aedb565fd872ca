package invoicing

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/billing/payments"
	"github.com/saasbase/saasbase/internal/idempotency"
	"github.com/saasbase/saasbase/internal/platform/errs"
)

// billingPrincipal is the principal of payments the service makes itself: its idempotency
// keys live apart from every user's and API key's.
var billingPrincipal = uuid.NewSHA1(uuid.NameSpaceURL, []byte("saasbase:billing"))

// Collector charges finalized invoices through the payments path, from the tenant's default
// payment method, with an idempotency key derived from the invoice id: however often it runs,
// on however many replicas, an invoice is charged at most once.
type Collector struct {
	Invoices  *Invoices
	Tenants   Tenants
	Payments  *payments.Payments
	Customers *payments.Customers
	Keys      *idempotency.Store
	Logger    *slog.Logger
}

// Run collects the open invoices, a batch at a time.
func (c *Collector) Run(ctx context.Context) (int, error) {
	if !c.Payments.Enabled() {
		return 0, nil
	}
	open, err := c.Invoices.open(ctx, 100)
	if err != nil {
		return 0, err
	}
	done := 0
	for _, o := range open {
		settled, err := c.collect(ctx, o.Tenant, o.Invoice)
		if err != nil {
			c.Logger.WarnContext(ctx, "invoicing: collecting an invoice", slog.String("invoice_id", o.Invoice.String()), slog.String("error", err.Error()))
			continue
		}
		if settled {
			done++
		}
	}
	return done, nil
}

type collected struct {
	PaymentID uuid.UUID `json:"payment_id"`
}

// collect charges one invoice, or follows up on its payment, and settles the invoice when
// the payment has an outcome.
func (c *Collector) collect(ctx context.Context, tenantID, invoiceID uuid.UUID) (bool, error) {
	inv, err := c.Invoices.Get(ctx, tenantID, invoiceID)
	if err != nil {
		return false, err
	}
	ti, err := c.Tenants.BillingInfo(ctx, tenantID)
	if err != nil {
		return false, err
	}
	if inv.PaymentID != nil {
		// Charged already: follow that payment up, whatever became of the key.
		return c.followUp(ctx, tenantID, invoiceID, *inv.PaymentID)
	}
	if ti.DefaultPaymentMethod == "" {
		// Nothing to charge: the invoice fails now rather than wait on a method forever.
		return true, c.Invoices.settle(ctx, tenantID, invoiceID, uuid.Nil, "payment_failed")
	}
	req := idempotency.Request{
		TenantID: tenantID, Principal: billingPrincipal, Key: "invoice-" + invoiceID.String(),
		Method: http.MethodPost, Path: "/v1/payments", BodyHash: sha256.Sum256(invoiceID[:]),
	}
	key, done, err := c.Keys.Internal(ctx, req)
	if err != nil || (key == nil && done == nil) {
		return false, err // or in flight elsewhere
	}
	var paymentID uuid.UUID
	if done != nil {
		var got collected
		if err := json.Unmarshal(done.Body, &got); err != nil {
			return false, err
		}
		paymentID = got.PaymentID
	} else {
		paymentID, err = c.charge(ctx, tenantID, ti, inv, key)
		if err != nil {
			return false, err
		}
	}
	return c.followUp(ctx, tenantID, invoiceID, paymentID)
}

// followUp settles an invoice when its payment has an outcome.
func (c *Collector) followUp(ctx context.Context, tenantID, invoiceID, paymentID uuid.UUID) (bool, error) {
	pay, err := c.Payments.Get(ctx, tenantID, paymentID)
	if err != nil {
		return false, err
	}
	status := map[string]string{payments.StatusSucceeded: "paid", payments.StatusFailed: "payment_failed", payments.StatusCanceled: "payment_failed"}[pay.Status]
	if status == "" {
		return false, nil // pending or processing: Stripe's webhook moves it on; the next run settles it
	}
	return true, c.Invoices.settle(ctx, tenantID, invoiceID, paymentID, status)
}

// charge creates the invoice's payment under the internal key and stores the key's answer.
func (c *Collector) charge(ctx context.Context, tenantID uuid.UUID, ti TenantInfo, inv Invoice, key *idempotency.Key) (uuid.UUID, error) {
	customer, err := c.Customers.Of(ctx, tenantID)
	if err != nil {
		c.abandon(ctx, key)
		return uuid.Nil, err
	}
	in := payments.PaymentInput{
		Amount: inv.Total, Currency: inv.Currency, Customer: customer,
		Description:   "Invoice " + inv.ID.String() + " (" + inv.Start.Format("2006-01-02") + " to " + inv.End.Format("2006-01-02") + ")",
		PaymentMethod: ti.DefaultPaymentMethod,
	}
	pay, err := c.Payments.Create(ctx, tenantID, in, key)
	if err != nil && !payments.IsOutcome(err) {
		c.abandon(ctx, key) // unavailable: resumed from its recovery point next run
		return uuid.Nil, err
	}
	if pay.ID == uuid.Nil {
		return uuid.Nil, errs.E(errs.Internal, "internal", "collection of invoice %s made no payment", inv.ID)
	}
	// The invoice remembers its payment from now on: a payment still pending when its key
	// expires is followed up, never charged again.
	if err := c.Invoices.setPayment(ctx, tenantID, *inv.ID, pay.ID); err != nil {
		return uuid.Nil, err
	}
	body, _ := json.Marshal(collected{PaymentID: pay.ID})
	return pay.ID, c.Keys.Finish(ctx, key, idempotency.Response{Status: http.StatusCreated, Header: map[string]string{}, Body: body})
}

// abandon releases a collection's key for the next run. If that fails the key stays locked
// until its lock times out, which delays the invoice but never charges it twice: say so.
func (c *Collector) abandon(ctx context.Context, key *idempotency.Key) {
	if err := c.Keys.Abandon(ctx, key); err != nil {
		c.Logger.WarnContext(ctx, "invoicing: releasing a collection's key", slog.String("key", key.ID()), slog.String("error", err.Error()))
	}
}
