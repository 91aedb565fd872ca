package pricing

import (
	"fmt"
	"regexp"

	"github.com/shopspring/decimal"
)

var currencyPattern = regexp.MustCompile(`^[a-z]{3}$`)

// IsCurrency reports whether s is written as a lowercase ISO 4217 code, such as usd.
func IsCurrency(s string) bool { return currencyPattern.MatchString(s) }

// FieldError names one invalid field of a charge by its path in the plan, such as
// charges[2].tiers[1].up_to.
type FieldError struct {
	Field   string
	Message string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// modelFields lists the model-specific fields each model reads, each with whether the model
// requires it (true) or merely allows it (false). Setting any other field is an error:
// ignoring it would price the plan differently from what its author wrote.
var modelFields = map[Model]map[string]bool{
	Standard:   {"unit_price": true},
	Graduated:  {"tiers": true},
	Volume:     {"tiers": true},
	Package:    {"package_size": true, "price": true, "free_units": false},
	Percentage: {"rate": true, "fixed_fee": false},
}

// Validate reports every problem with c at once, naming fields under path (such as
// "charges[2]"; empty for none). A charge without problems can price any non-negative usage.
func (c Charge) Validate(path string) []FieldError {
	v := validator{path: path}
	if c.Meter == "" {
		v.add("meter", "is required")
	}
	fields, ok := modelFields[c.Model]
	if !ok {
		v.add("model", "must be one of standard, graduated, volume, package, percentage")
		return v.errs // which fields belong depends on the model
	}
	for _, f := range []struct {
		name  string
		set   bool
		check func(field string)
	}{
		{"unit_price", c.UnitPrice != nil, func(f string) { v.price(f, c.UnitPrice) }},
		{"tiers", c.Tiers != nil, func(f string) { v.tiers(f, c.Tiers) }},
		{"package_size", c.PackageSize != nil, func(f string) { v.positive(f, *c.PackageSize) }},
		{"price", c.Price != nil, func(f string) { v.price(f, c.Price) }},
		{"free_units", c.FreeUnits != nil, func(f string) { v.nonNegative(f, *c.FreeUnits) }},
		{"rate", c.Rate != nil, func(f string) { v.rate(f, c.Rate) }},
		{"fixed_fee", c.FixedFee != nil, func(f string) { v.price(f, c.FixedFee) }},
	} {
		required, used := fields[f.name]
		switch {
		case f.set && !used:
			v.add(f.name, fmt.Sprintf("is not used by the %s model", c.Model))
		case f.set:
			f.check(f.name)
		case required:
			v.add(f.name, "is required")
		}
	}
	return v.errs
}

// validator collects the FieldErrors of one charge.
type validator struct {
	path string
	errs []FieldError
}

func (v *validator) add(field, message string) {
	if v.path != "" {
		field = v.path + "." + field
	}
	v.errs = append(v.errs, FieldError{Field: field, Message: message})
}

// tiers checks that the bounds ascend and that exactly the last tier is open-ended, so that
// every quantity falls in exactly one tier.
func (v *validator) tiers(field string, tiers []Tier) {
	if len(tiers) == 0 {
		v.add(field, "must have at least one tier")
		return
	}
	var floor decimal.Decimal // where the previous tier ends
	for i, t := range tiers {
		tier := fmt.Sprintf("%s[%d].", field, i)
		last := i == len(tiers)-1
		switch {
		case t.UpTo == nil && !last:
			v.add(tier+"up_to", "may be null only in the last tier")
		case t.UpTo != nil && last:
			v.add(tier+"up_to", "must be null in the last tier, so that every quantity is priced")
		case t.UpTo != nil && !t.UpTo.GreaterThan(floor):
			v.add(tier+"up_to", fmt.Sprintf("must be greater than %s: tiers ascend", floor))
		}
		if t.UpTo != nil {
			floor = decimal.Max(floor, *t.UpTo) // one misplaced bound is one error, not two
		}
		if t.UnitPrice == nil {
			v.add(tier+"unit_price", "is required")
		} else {
			v.price(tier+"unit_price", t.UnitPrice)
		}
		if t.FlatFee != nil {
			v.price(tier+"flat_fee", t.FlatFee)
		}
	}
}

func (v *validator) price(field string, p *DecimalString) {
	switch {
	case p.number:
		v.add(field, `must be a decimal string in major units, such as "0.002", not a JSON number`)
	case p.IsNegative():
		v.add(field, "must not be negative")
	}
}

func (v *validator) rate(field string, r *DecimalString) {
	switch {
	case r.number:
		v.add(field, `must be a decimal string in percent, such as "1.5", not a JSON number`)
	case r.IsNegative() || r.GreaterThan(decimal.NewFromInt(100)):
		v.add(field, "must be between 0 and 100")
	}
}

func (v *validator) positive(field string, d decimal.Decimal) {
	if !d.IsPositive() {
		v.add(field, "must be greater than 0")
	}
}

func (v *validator) nonNegative(field string, d decimal.Decimal) {
	if d.IsNegative() {
		v.add(field, "must not be negative")
	}
}
