package pricing

import (
	"strconv"

	"github.com/shopspring/decimal"
)

// DecimalString is a price or rate: a decimal that the API carries as a JSON string in major
// units ("0.002"), so that no client's float64 parser can round it on the way.
type DecimalString struct {
	decimal.Decimal

	// number records that the value arrived as a JSON number. Decoding accepts it so that
	// Validate can name the field, where a decoding error could not say which of the plan's
	// prices was wrong.
	number bool
}

// MarshalJSON writes d as a JSON string whatever decimal.MarshalJSONWithoutQuotes says.
func (d DecimalString) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, d.String()), nil
}

// UnmarshalJSON reads a decimal string, or a JSON number for Validate to reject.
func (d *DecimalString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" { // as encoding/json does: null leaves the value alone
		return nil
	}
	if err := d.Decimal.UnmarshalJSON(b); err != nil {
		return err
	}
	d.number = b[0] != '"'
	return nil
}
