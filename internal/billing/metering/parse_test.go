package metering

import (
	"testing"

	"github.com/shopspring/decimal"
)

// TestParseValue: the bounds of a usage value, and which one a refused value breaks.
func TestParseValue(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string // the value read, or the error
	}{
		{"0", "0"}, {"-0", "0"}, {"+0.0", "0"}, {"0e15", "0"}, {"1e15", "1000000000000000"},
		{"999999999999999.999999999999", "999999999999999.999999999999"}, {"0.000000000001", "0.000000000001"},
		{"1.5E+3", "1500"}, {".5", "0.5"}, {"5.", "5"}, {"00012", "12"}, {"1.50e-11", errTooManyPlaces.Error()},

		{"-1100", errNegative.Error()}, {"-1e-12", errNegative.Error()},
		{"1000000000000001", errTooLarge.Error()}, {"1.0000000000000001e15", errTooLarge.Error()},
		{"1e309", errTooLarge.Error()}, {"1e999999999", errTooLarge.Error()}, {"0e99999", errTooLarge.Error()},
		{"1e-13", errTooManyPlaces.Error()}, {"2.500000000000000", errTooManyPlaces.Error()}, {"1e-999999999", errTooManyPlaces.Error()},
		{"", errNotNumber.Error()}, {".", errNotNumber.Error()}, {"-", errNotNumber.Error()}, {"1e", errNotNumber.Error()},
		{"1e+", errNotNumber.Error()}, {"1e-+5", errNotNumber.Error()}, {"-+0", errNotNumber.Error()}, {"NaN", errNotNumber.Error()},
		{"Infinity", errNotNumber.Error()}, {"0x10", errNotNumber.Error()}, {" 5", errNotNumber.Error()}, {"1_000", errNotNumber.Error()},
		{"١", errNotNumber.Error()},
	} {
		d, err := parseValue(tt.in)
		got := d.String()
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("parseValue(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if err == nil && !d.Equal(decimal.RequireFromString(tt.want)) {
			t.Errorf("parseValue(%q) = %v", tt.in, d)
		}
	}
}
