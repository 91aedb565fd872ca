// Package plans is the catalog of plans: what a tenant subscribes to, its prices, rate limit
// and quotas. Plans are platform data that the operator changes; no tenant owns them.
package plans

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/billing/pricing"
	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/ratelimit"
)

// Plan is an offer tenants subscribe to. Prices are decimal strings in major units.
type Plan struct {
	Code      string           `json:"code"`
	Name      string           `json:"name"`
	Currency  string           `json:"currency"`
	BaseFee   string           `json:"base_fee"`
	RateLimit auth.RateLimit   `json:"rate_limit"`
	Quotas    map[string]Quota `json:"quotas"`
	Charges   []pricing.Charge `json:"charges"`
	CreatedAt time.Time        `json:"created_at"`
	UpdatedAt time.Time        `json:"updated_at"`
}

// Quota limits a meter's usage per billing period. A hard quota refuses what is past it; a
// soft one lets it through and says so in events.
type Quota struct {
	Limit       int64  `json:"limit"`
	Enforcement string `json:"enforcement"`
}

var (
	planCodePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	decimalPattern  = regexp.MustCompile(`^\d{1,14}(\.\d{1,6})?$`)
)

// PlanInput is the body of PUT /v1/admin/plans/{code}.
type PlanInput struct {
	Code      string           `json:"code"`
	Name      string           `json:"name"`
	Currency  string           `json:"currency"`
	BaseFee   string           `json:"base_fee"`
	RateLimit *auth.RateLimit  `json:"rate_limit"`
	Quotas    map[string]Quota `json:"quotas"`
	Charges   []pricing.Charge `json:"charges"`
}

// Validate checks every field.
func (in PlanInput) Validate() error {
	var f errs.Fields
	if in.Name == "" || utf8.RuneCountInString(in.Name) > 200 {
		f.Add("name", "is required, at most 200 characters")
	}
	if !pricing.IsCurrency(in.Currency) {
		f.Add("currency", "must be a lowercase ISO 4217 code such as usd")
	}
	if !decimalPattern.MatchString(in.BaseFee) {
		f.Add("base_fee", `must be a decimal string in major units, such as "49.00"`)
	}
	switch rl := in.RateLimit; {
	case rl == nil:
		f.Add("rate_limit", "is required")
	default:
		// The limiter's own rule: a plan it cannot hold would fail every request of its tenants.
		f.AddFrom(ratelimit.CheckRateLimit("rate_limit", *rl))
	}
	for meter, q := range in.Quotas {
		if q.Limit < 0 || (q.Enforcement != "hard" && q.Enforcement != "soft") {
			f.Add("quotas."+meter, `must be {limit >= 0, enforcement: "hard" or "soft"}`)
		}
	}
	for i, c := range in.Charges {
		for _, e := range c.Validate(fmt.Sprintf("charges[%d]", i)) {
			f.Add(e.Field, e.Message)
		}
	}
	return f.Err()
}

// Meters tells whether a meter exists; metering's catalog provides it.
type Meters interface {
	Exists(ctx context.Context, key string) (bool, error)
}

// Plans is the catalog. Plans are platform data: no tenant owns them.
type Plans struct {
	DB     *postgres.DB
	Outbox *events.Outbox
	Meters Meters

	// OnChange, if set, hears of a changed plan on this replica at once (caches of limits).
	OnChange func(code string)
}

// checkMeters refuses quotas and charges on meters that do not exist.
func (s *Plans) checkMeters(ctx context.Context, in PlanInput) error {
	var f errs.Fields
	check := func(field, meter string) error {
		ok, err := s.Meters.Exists(ctx, meter)
		if err == nil && !ok {
			f.Add(field, "there is no meter "+meter)
		}
		return err
	}
	for meter := range in.Quotas {
		if err := check("quotas."+meter, meter); err != nil {
			return err
		}
	}
	for i, c := range in.Charges {
		if err := check(fmt.Sprintf("charges[%d].meter", i), c.Meter); err != nil {
			return err
		}
	}
	return f.Err()
}

const planColumns = "code, name, currency, base_fee::text, rate_limit, quotas, charges, created_at, updated_at"

// scanPlan reads planColumns, then any extra columns into extra.
func scanPlan(row pgx.Row, extra ...any) (Plan, error) {
	var p Plan
	dest := append([]any{&p.Code, &p.Name, &p.Currency, &p.BaseFee, &p.RateLimit, &p.Quotas, &p.Charges, &p.CreatedAt, &p.UpdatedAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return Plan{}, err
	}
	p.BaseFee = decimal.RequireFromString(p.BaseFee).String() // numeric(20,6) text has trailing zeros
	if p.Quotas == nil {
		p.Quotas = map[string]Quota{}
	}
	if p.Charges == nil {
		p.Charges = []pricing.Charge{}
	}
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return p, nil
}

// List answers every plan, by code.
func (s *Plans) List(ctx context.Context) ([]Plan, error) {
	rows, _ := s.DB.Platform(ctx).Query(ctx, "SELECT "+planColumns+" FROM plans ORDER BY code")
	ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Plan, error) { return scanPlan(r) })
	if err != nil {
		return nil, fmt.Errorf("plans.list: %w", err)
	}
	return ps, nil
}

// Get answers one plan.
func (s *Plans) Get(ctx context.Context, code string) (Plan, error) {
	p, err := scanPlan(s.DB.Platform(ctx).QueryRow(ctx, "SELECT "+planColumns+" FROM plans WHERE code = $1", code))
	if postgres.IsNoRows(err) {
		return Plan{}, errs.NotFoundf("no plan %q", code)
	}
	if err != nil {
		return Plan{}, fmt.Errorf("plans.get %q: %w", code, err)
	}
	return p, nil
}

// Versioned is a plan read together with the version of its row.
type Versioned struct {
	Plan Plan
	// Version moves with every change of the plan's row (it is the row's xmin): a reader that
	// keeps a plan can tell, from the version alone, whether it is still the stored one. ""
	// when the plan could not be read.
	Version string
	Err     error // why the plan could not be read: NotFound, or a stored value that does not parse
}

// VersionColumn is a plan's version in SQL, for a reader that checks the plan it keeps
// against the stored one (in a query over plans, qualified by alias if need be).
const VersionColumn = "xmin::text"

// QueueGet queues into b the read of a plan and its version, which sets *v when b's results
// are read. Errors of the plan itself are kept in v.Err; those of the statement end the batch.
func QueueGet(b *pgx.Batch, code string, v *Versioned) {
	b.Queue("SELECT "+planColumns+", "+VersionColumn+" FROM plans WHERE code = $1", code).QueryRow(func(row pgx.Row) error {
		var err error
		v.Plan, err = scanPlan(row, &v.Version)
		var pgErr *pgconn.PgError
		switch {
		case postgres.IsNoRows(err):
			v.Err = errs.NotFoundf("no plan %q", code)
		case errors.As(err, &pgErr):
			return err
		case err != nil:
			v.Version, v.Err = "", fmt.Errorf("plans.get %q: %w", code, err)
		}
		return nil
	})
}

// Put creates or replaces a plan, and says which it did. The plan.changed event is a
// platform event: it is written under the platform tenant, which no tenant can read.
func (s *Plans) Put(ctx context.Context, code string, in PlanInput) (p Plan, created bool, err error) {
	if !planCodePattern.MatchString(code) {
		return Plan{}, false, errs.Field("code", "must be lowercase letters, digits, - or _, at most 63")
	}
	if in.Code != "" && in.Code != code {
		return Plan{}, false, errs.Field("code", "must match the code in the path")
	}
	if err := s.checkMeters(ctx, in); err != nil {
		return Plan{}, false, fmt.Errorf("plans.put %q: %w", code, err)
	}
	if in.Quotas == nil {
		in.Quotas = map[string]Quota{}
	}
	if in.Charges == nil {
		in.Charges = []pricing.Charge{}
	}
	err = s.DB.InTenantTx(ctx, postgres.PlatformTenant, func(tx pgx.Tx) error {
		row := tx.QueryRow(ctx, `
			INSERT INTO plans AS p (code, name, currency, base_fee, rate_limit, quotas, charges)
			VALUES ($1, $2, $3, $4::numeric, $5, $6, $7)
			ON CONFLICT (code) DO UPDATE
			   SET name = excluded.name, currency = excluded.currency, base_fee = excluded.base_fee,
			       rate_limit = excluded.rate_limit, quotas = excluded.quotas, charges = excluded.charges,
			       updated_at = now()
			RETURNING `+planColumns+`, (xmax = 0)`,
			code, in.Name, in.Currency, in.BaseFee, in.RateLimit, in.Quotas, in.Charges)
		var err error
		if p, err = scanPlan(row, &created); err != nil {
			return err
		}
		return s.Outbox.Append(ctx, tx, postgres.PlatformTenant, "plan.changed", p)
	})
	if err != nil {
		return Plan{}, false, fmt.Errorf("plans.put %q: %w", code, err)
	}
	if s.OnChange != nil {
		s.OnChange(code)
	}
	return p, created, nil
}
