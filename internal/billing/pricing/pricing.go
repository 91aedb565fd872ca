// Package pricing turns a plan's usage charges and a period's metered usage into invoice
// amounts. It is pure (no I/O, no clock) and exact: amounts stay exact decimals until each
// invoice line is rounded, once, to the currency's minor unit.
package pricing

import (
	"fmt"
	"slices"

	"github.com/shopspring/decimal"
)

// Model is how a charge turns a quantity into an amount.
type Model string

// The charge models, with the semantics Lago and Orb give them.
const (
	Standard   Model = "standard"   // quantity × unit_price
	Graduated  Model = "graduated"  // each tier prices the units that fall within it
	Volume     Model = "volume"     // the tier the whole quantity falls in prices every unit
	Package    Model = "package"    // price per started package_size units beyond free_units
	Percentage Model = "percentage" // rate % of the summed value, plus fixed_fee per event
)

// Charge prices one meter of a plan. Which of the optional fields apply depends on Model;
// Validate rejects the others.
type Charge struct {
	Meter string `json:"meter"`
	Model Model  `json:"model"`

	UnitPrice   *DecimalString   `json:"unit_price,omitempty"`   // standard
	Tiers       []Tier           `json:"tiers,omitempty"`        // graduated, volume
	PackageSize *decimal.Decimal `json:"package_size,omitempty"` // package
	Price       *DecimalString   `json:"price,omitempty"`        // package
	FreeUnits   *decimal.Decimal `json:"free_units,omitempty"`   // package; optional
	Rate        *DecimalString   `json:"rate,omitempty"`         // percentage, in percent: "1.5" is 1.5 %
	FixedFee    *DecimalString   `json:"fixed_fee,omitempty"`    // percentage, per event; optional
}

// Tier is one band of a graduated or volume charge. It covers the quantities above the
// previous tier's UpTo (or 0) up to and including its own; a nil UpTo (JSON null) has no end.
type Tier struct {
	UpTo      *decimal.Decimal `json:"up_to"`
	UnitPrice *DecimalString   `json:"unit_price"`
	FlatFee   *DecimalString   `json:"flat_fee,omitempty"` // optional
}

// Usage is what a meter measured over the invoiced period.
type Usage struct {
	Quantity decimal.Decimal // the meter's aggregated value
	Events   int64           // how many events make it up, for percentage's fixed fee per event
}

// Price answers what c costs for u, in major units. The amount is exact: rounding belongs to
// the invoice line, and happens once there (see Invoice). A charge that fails Validate, or
// negative usage, is an error.
func Price(c Charge, u Usage) (decimal.Decimal, error) {
	if errs := c.Validate(""); len(errs) > 0 {
		return decimal.Decimal{}, fmt.Errorf("pricing: charge for meter %q: %w", c.Meter, errs[0])
	}
	q := u.Quantity
	if q.IsNegative() || u.Events < 0 {
		return decimal.Decimal{}, fmt.Errorf("pricing: meter %q: negative usage (%s over %d events)", c.Meter, q, u.Events)
	}
	switch c.Model {
	case Standard:
		return q.Mul(c.UnitPrice.Decimal), nil
	case Graduated:
		return graduated(c.Tiers, q), nil
	case Volume:
		return volume(c.Tiers, q), nil
	case Package:
		return packaged(c, q), nil
	case Percentage:
		// Shift rather than Div: dividing by 100 is exact, whereas Div rounds its quotient
		// to decimal.DivisionPrecision.
		fees := orZero(c.FixedFee).Mul(decimal.NewFromInt(u.Events))
		return q.Mul(c.Rate.Decimal).Shift(-2).Add(fees), nil
	}
	panic("pricing: Validate accepted unknown model " + string(c.Model))
}

// graduated prices each tier's share of q at that tier's unit price, plus the flat fee of
// every tier q reaches into. Tiers q does not reach cost nothing, so q = 0 pays nothing.
func graduated(tiers []Tier, q decimal.Decimal) decimal.Decimal {
	var total, floor decimal.Decimal
	for _, t := range tiers {
		if q.LessThanOrEqual(floor) {
			break
		}
		units := q.Sub(floor)
		if t.UpTo != nil {
			units = decimal.Min(units, t.UpTo.Sub(floor))
			floor = *t.UpTo
		}
		total = total.Add(units.Mul(t.UnitPrice.Decimal)).Add(orZero(t.FlatFee).Decimal)
	}
	return total
}

// volume prices all of q at the unit price of the one tier q falls in, plus that tier's flat
// fee. Nothing used, nothing owed: q = 0 pays no flat fee.
func volume(tiers []Tier, q decimal.Decimal) decimal.Decimal {
	if q.IsZero() {
		return decimal.Decimal{}
	}
	// Validate guarantees an open-ended last tier, so some tier always matches.
	i := slices.IndexFunc(tiers, func(t Tier) bool { return t.UpTo == nil || q.LessThanOrEqual(*t.UpTo) })
	return q.Mul(tiers[i].UnitPrice.Decimal).Add(orZero(tiers[i].FlatFee).Decimal)
}

// packaged charges c's price for every package begun beyond the free units.
func packaged(c Charge, q decimal.Decimal) decimal.Decimal {
	billable := q.Sub(orZero(c.FreeUnits))
	if !billable.IsPositive() {
		return decimal.Decimal{}
	}
	// QuoRem to 0 places is exact integer division. Div would round the quotient, and a
	// remainder smaller than its precision would then not start the package it should.
	n, rem := billable.QuoRem(*c.PackageSize, 0)
	if !rem.IsZero() {
		n = n.Add(decimal.NewFromInt(1))
	}
	return n.Mul(c.Price.Decimal)
}

// orZero answers *p, or the zero value for an optional field that was left out; for the
// decimal types that zero value is 0.
func orZero[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
