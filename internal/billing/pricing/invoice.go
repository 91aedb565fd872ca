package pricing

import (
	"errors"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
)

// Line is one line of an invoice: the base fee, or one charge.
type Line struct {
	Description string
	Meter       string          // empty for the base fee
	Quantity    decimal.Decimal // the usage priced; 1 for the base fee
	Amount      int64           // in minor units of the invoice currency
}

// MaxAmount is the most an invoice charges, in minor units of its currency: 10^15 (ten
// trillion usd in cents). Usage values are bounded but their totals are not, and prices are
// the operator's, so an exact amount can exceed what an int64, or a client's float64, holds
// exactly; an invoice caps it here instead of failing, so that no usage can keep a period
// from being previewed or finalized. Below 2^53, every amount is exact in JSON clients too.
const MaxAmount int64 = 1e15

// Invoice prices one period of a plan: a line for the base fee, if there is one, then a line
// per charge in order, each priced from its meter's usage (a meter missing from usage
// measured nothing). Each line is rounded once and subtotal is the sum of the rounded lines,
// so the lines always add up to it. The subtotal is capped at MaxAmount: a line that would
// pass it charges what the lines before it left, and the lines after it charge nothing.
func Invoice(currency string, baseFee decimal.Decimal, charges []Charge, usage map[string]Usage) (lines []Line, subtotal int64, err error) {
	if baseFee.IsNegative() {
		return nil, 0, errors.New("pricing: negative base fee")
	}
	lines = make([]Line, 0, len(charges)+1)
	add := func(l Line, amount decimal.Decimal) {
		// Amounts are never negative, so only the upper bound can be crossed; comparing as
		// decimals keeps the amount from ever having to fit an int64.
		left := MaxAmount - subtotal
		if minor := toMinor(amount, currency); minor.LessThan(decimal.NewFromInt(left)) {
			l.Amount = minor.IntPart()
		} else {
			l.Amount = left
		}
		subtotal += l.Amount
		lines = append(lines, l)
	}
	if baseFee.IsPositive() {
		add(Line{Description: "Base fee", Quantity: decimal.NewFromInt(1)}, baseFee)
	}
	for i, c := range charges {
		u := usage[c.Meter]
		amount, err := Price(c, u)
		if err != nil {
			return nil, 0, fmt.Errorf("charges[%d]: %w", i, err)
		}
		add(Line{Description: fmt.Sprintf("%s (%s)", c.Meter, c.Model), Meter: c.Meter, Quantity: u.Quantity}, amount)
	}
	return lines, subtotal, nil
}

// Round converts an exact amount in major units to whole minor units of currency, rounding
// half away from zero: 0.005 usd is 1 cent. The result is undefined beyond the range of
// int64; Invoice caps amounts at MaxAmount instead.
func Round(amount decimal.Decimal, currency string) int64 {
	return toMinor(amount, currency).IntPart()
}

func toMinor(amount decimal.Decimal, currency string) decimal.Decimal {
	return amount.Shift(minorExponent(currency)).Round(0)
}

// minorExponent answers the number of decimal places of currency's minor unit per ISO 4217,
// ignoring case. Every currency not listed has 2.
func minorExponent(currency string) int32 {
	switch strings.ToLower(currency) {
	case "bif", "clp", "djf", "gnf", "isk", "jpy", "kmf", "krw", "pyg", "rwf", "ugx", "uyi", "vnd", "vuv", "xaf", "xof", "xpf":
		return 0
	case "bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd":
		return 3
	case "clf", "uyw":
		return 4
	}
	return 2
}
