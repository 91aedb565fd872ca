package payments

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stripe/stripe-go/v76"

	"github.com/saasbase/saasbase/internal/billing/pricing"
	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/idempotency"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Payment statuses.
const (
	StatusPending    = "pending"
	StatusProcessing = "processing"
	StatusSucceeded  = "succeeded"
	StatusFailed     = "failed"
	StatusCanceled   = "canceled"
	StatusRefunded   = "refunded"
)

// Payment is a charge through a Stripe PaymentIntent.
type Payment struct {
	ID              uuid.UUID `json:"id"`
	Amount          int64     `json:"amount"`
	Currency        string    `json:"currency"`
	Description     string    `json:"description"`
	Customer        *string   `json:"customer"`
	Status          string    `json:"status"`
	PaymentIntentID *string   `json:"stripe_payment_intent_id"`
	ClientSecret    *string   `json:"client_secret,omitempty"` // only in the creation answer
	AmountRefunded  int64     `json:"amount_refunded"`
	FailureCode     *string   `json:"failure_code"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`

	paymentMethod *string
}

// PaymentInput is the body of POST /v1/payments.
type PaymentInput struct {
	Amount        int64  `json:"amount"`
	Currency      string `json:"currency"`
	Description   string `json:"description"`
	Customer      string `json:"customer"`
	PaymentMethod string `json:"payment_method"`
}

var stripeIDPattern = regexp.MustCompile(`^[A-Za-z0-9_]{1,255}$`)

// Validate checks every field.
func (in PaymentInput) Validate() error {
	var f errs.Fields
	if in.Amount < 1 || in.Amount > 99_999_999 {
		f.Add("amount", "must be an integer amount in minor units from 1 to 99999999")
	}
	if !pricing.IsCurrency(in.Currency) {
		f.Add("currency", "must be a lowercase ISO 4217 code such as usd")
	}
	if utf8.RuneCountInString(in.Description) > 1000 {
		f.Add("description", "must be at most 1000 characters")
	}
	if in.Customer != "" && !stripeIDPattern.MatchString(in.Customer) {
		f.Add("customer", "must be a Stripe customer id such as cus_123")
	}
	if in.PaymentMethod != "" && !stripeIDPattern.MatchString(in.PaymentMethod) {
		f.Add("payment_method", "must be a Stripe payment method id such as pm_card_visa")
	}
	return f.Err()
}

// ErrPaymentsDisabled answers the payment endpoints when no Stripe key is configured.
var ErrPaymentsDisabled = errs.E(errs.Unavailable, "payment_provider_unavailable", "payments are not configured on this server (STRIPE_SECRET_KEY is empty)")

// Recovery points of a payment's creation, in order.
const (
	pointPaymentCreated = "payment_created" // our row exists; the PaymentIntent may or may not
	pointFinished       = "finished"        // the PaymentIntent's id and outcome are stored
)

// progress is what a resumed request needs to go on.
type progress struct {
	PaymentID    uuid.UUID `json:"payment_id"`
	ClientSecret string    `json:"client_secret,omitempty"`
	Declined     string    `json:"declined,omitempty"` // the card's decline code
	Rejected     string    `json:"rejected,omitempty"` // Stripe refused the request itself
}

// Payments creates, reads and refunds payments.
type Payments struct {
	DB     *postgres.DB
	Outbox *events.Outbox
	Clock  clock.Clock
	Stripe *Stripe // nil: payments are disabled

	// afterStripe, when set, runs between Stripe's answer and the commit of its outcome:
	// the place a crash hurts most, for fault tests.
	afterStripe func() error
}

// Enabled reports whether payments are configured (STRIPE_SECRET_KEY is set).
func (s *Payments) Enabled() bool { return s.Stripe != nil }

// stripeKey derives the key sent to Stripe from our stored key's id: the same on every
// retry and every replica, different for every client key.
func stripeKey(kind string, k *idempotency.Key) string { return "saasbase-" + kind + "-" + k.ID() }

// Create runs, or resumes, a payment's creation in phases, each committed with its recovery
// point; no transaction is open while Stripe is called:
//
//	started → (insert the payment) → payment_created → (create the PaymentIntent with a key
//	derived from ours; store its id and outcome) → finished
//
// A crash anywhere leaves a key that a retry, or the completer, resumes from its last point;
// Stripe sees the same idempotency key again and answers the same PaymentIntent.
func (s *Payments) Create(ctx context.Context, tenantID uuid.UUID, in PaymentInput, key *idempotency.Key) (Payment, error) {
	if s.Stripe == nil {
		return Payment{}, ErrPaymentsDisabled
	}
	var pr progress
	if err := key.RecoveryData(&pr); err != nil {
		return Payment{}, err
	}
	if key.RecoveryPoint() == idempotency.Started {
		now := s.Clock.Now()
		pay := Payment{
			ID: uuid.Must(uuid.NewV7()), Amount: in.Amount, Currency: in.Currency, Description: in.Description,
			Customer: optional(in.Customer), paymentMethod: optional(in.PaymentMethod),
			Status: StatusPending, CreatedAt: now, UpdatedAt: now,
		}
		pr.PaymentID = pay.ID
		err := key.Advance(ctx, pointPaymentCreated, pr, func(tx pgx.Tx) error {
			if err := ownCustomer(ctx, tx, in.Customer); err != nil {
				return err
			}
			return insertPayment(ctx, tx, tenantID, pay)
		})
		if err != nil {
			return Payment{}, fmt.Errorf("payments.create %s: %w", pay.ID, err)
		}
	}
	if key.RecoveryPoint() == pointPaymentCreated {
		if err := s.charge(ctx, tenantID, key, &pr); err != nil {
			return Payment{}, fmt.Errorf("payments.create %s: charge: %w", pr.PaymentID, err)
		}
	}
	pay, err := s.Get(ctx, tenantID, pr.PaymentID)
	if err != nil {
		return Payment{}, err
	}
	switch {
	case pr.Declined != "":
		return pay, errs.E(errs.PaymentFailed, "payment_declined", "the card was declined (%s)", pr.Declined)
	case pr.Rejected != "":
		return pay, errs.Field("body", pr.Rejected)
	}
	pay.ClientSecret = optional(pr.ClientSecret)
	return pay, nil
}

// charge creates the PaymentIntent of a created payment and stores its outcome.
func (s *Payments) charge(ctx context.Context, tenantID uuid.UUID, key *idempotency.Key, pr *progress) error {
	pay, err := s.Get(ctx, tenantID, pr.PaymentID)
	if err != nil {
		return err
	}
	pi, err := s.createIntent(ctx, tenantID, key, pay)
	status, failure := "", ""
	var declined *errDeclined
	switch {
	case asDeclined(err, &declined):
		status, failure, pi = StatusFailed, declined.code, declined.intent
		pr.Declined = declined.code
	case errs.KindOf(err) == errs.Invalid:
		// Stripe refused the request itself: nothing was created and a retry would not help.
		status, failure = StatusFailed, "invalid_request"
		var e *errs.Error
		if errors.As(err, &e) && len(e.Fields) > 0 {
			pr.Rejected = e.Fields[0].Message
		}
	case err != nil:
		return err // unavailable: the key is released at this point; a retry resumes here
	default:
		status = intentStatus(pi.Status)
		pr.ClientSecret = pi.ClientSecret
	}
	if s.afterStripe != nil {
		if err := s.afterStripe(); err != nil {
			return err
		}
	}
	err2 := key.Advance(ctx, pointFinished, pr, func(tx pgx.Tx) error {
		var intentID *string
		if pi != nil {
			intentID = &pi.ID
		}
		return s.setOutcome(ctx, tx, tenantID, pay.ID, intentID, status, optional(failure))
	})
	return err2
}

// stripeKeyRetention is how long Stripe remembers an idempotency key (24 h), with a margin.
const stripeKeyRetention = 23 * time.Hour

// createIntent creates the payment's PaymentIntent under our derived key. Past Stripe's key
// retention the key no longer protects us, so an intent made by an earlier attempt is looked
// up by our payment id first, and adopted if found.
func (s *Payments) createIntent(ctx context.Context, tenantID uuid.UUID, key *idempotency.Key, pay Payment) (*stripe.PaymentIntent, error) {
	if s.Clock.Now().Sub(key.CreatedAt()) > stripeKeyRetention {
		pi, err := s.Stripe.FindPaymentIntent(ctx, pay.ID.String())
		if err != nil || pi != nil {
			return pi, err
		}
	}
	return s.Stripe.CreatePaymentIntent(ctx, intentParams{
		IdempotencyKey: stripeKey("pi", key),
		Amount:         pay.Amount, Currency: pay.Currency, Description: pay.Description,
		Customer: deref(pay.Customer), PaymentMethod: deref(pay.paymentMethod),
		Metadata: map[string]string{"tenant_id": tenantID.String(), "payment_id": pay.ID.String()},
	})
}

func asDeclined(err error, d **errDeclined) bool {
	e, ok := err.(*errDeclined)
	if ok {
		*d = e
	}
	return ok
}

// setOutcome records a PaymentIntent's id and status, and the matching event, in tx.
func (s *Payments) setOutcome(ctx context.Context, tx pgx.Tx, tenantID, id uuid.UUID, intentID *string, status string, failure *string) error {
	p, err := scanPayment(tx.QueryRow(ctx, `
		UPDATE payments SET stripe_payment_intent_id = coalesce($2, stripe_payment_intent_id), status = $3,
		                    failure_code = $4, updated_at = $5
		 WHERE id = $1 RETURNING `+paymentColumns, id, intentID, status, failure, s.Clock.Now()))
	if err != nil {
		return err
	}
	return s.emit(ctx, tx, tenantID, p)
}

// emit writes the event of a payment's new status, if it has one.
func (s *Payments) emit(ctx context.Context, tx pgx.Tx, tenantID uuid.UUID, p Payment) error {
	switch p.Status {
	case StatusSucceeded, StatusFailed, StatusRefunded, StatusCanceled:
		return s.Outbox.Append(ctx, tx, tenantID, "payment."+p.Status, p)
	}
	return nil
}

const paymentColumns = `id, amount, currency, description, customer, payment_method, status,
	stripe_payment_intent_id, amount_refunded, failure_code, created_at, updated_at`

func scanPayment(row pgx.Row) (Payment, error) {
	var p Payment
	err := row.Scan(&p.ID, &p.Amount, &p.Currency, &p.Description, &p.Customer, &p.paymentMethod, &p.Status,
		&p.PaymentIntentID, &p.AmountRefunded, &p.FailureCode, &p.CreatedAt, &p.UpdatedAt)
	if postgres.IsNoRows(err) {
		return Payment{}, errs.NotFoundf("no such payment")
	}
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return p, err
}

func insertPayment(ctx context.Context, tx pgx.Tx, tenantID uuid.UUID, p Payment) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO payments (tenant_id, id, amount, currency, description, customer, payment_method, status, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)`,
		tenantID, p.ID, p.Amount, p.Currency, p.Description, p.Customer, p.paymentMethod, p.Status, p.CreatedAt)
	return err
}

// Get answers one payment.
func (s *Payments) Get(ctx context.Context, tenantID, id uuid.UUID) (Payment, error) {
	p, err := postgres.ReadRow(ctx, s.DB, tenantID, scanPayment, "SELECT "+paymentColumns+" FROM payments WHERE id = $1", id)
	if err != nil {
		return Payment{}, fmt.Errorf("payments.get %s: %w", id, err)
	}
	return p, nil
}

// List answers the tenant's payments, newest first.
func (s *Payments) List(ctx context.Context, tenantID uuid.UUID, page httpx.Page) ([]Payment, error) {
	ps, err := postgres.ReadRows(ctx, s.DB, tenantID, scanPayment,
		"SELECT "+paymentColumns+" FROM payments WHERE id < $1 ORDER BY id DESC LIMIT $2", page.Before(), page.Limit+1)
	if err != nil {
		return nil, fmt.Errorf("payments.list tenant %s: %w", tenantID, err)
	}
	return ps, nil
}

// movable reports whether a payment may go from one status to another. Final states stay
// final, except that a success may be refunded; a failure may still succeed on a later
// attempt of the same PaymentIntent.
func movable(from, to string) bool {
	if from == to {
		return false
	}
	switch from {
	case StatusSucceeded:
		return to == StatusRefunded
	case StatusCanceled, StatusRefunded:
		return false
	case StatusFailed:
		return to == StatusProcessing || to == StatusSucceeded || to == StatusCanceled
	case StatusProcessing:
		return to != StatusPending
	}
	return true // pending
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ownCustomer refuses a Stripe customer that is not the tenant's own: every tenant shares the
// platform's Stripe account, so a customer id is the only thing between one tenant and
// another's saved cards.
func ownCustomer(ctx context.Context, tx pgx.Tx, customer string) error {
	if customer == "" {
		return nil
	}
	var ok bool
	err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM billing_customers WHERE stripe_customer_id = $1)", customer).Scan(&ok)
	if err == nil && !ok {
		return errs.Field("customer", "is not this tenant's Stripe customer")
	}
	return err
}
