package pricing_test

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/saasbase/saasbase/internal/billing/pricing"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func qty(s string) pricing.Usage { return pricing.Usage{Quantity: dec(s)} }

// decode reads a charge as the API does, rejecting unknown fields.
func decode(t testing.TB, doc string) pricing.Charge {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(doc))
	d.DisallowUnknownFields()
	var c pricing.Charge
	if err := d.Decode(&c); err != nil {
		t.Fatalf("decode %s: %v", doc, err)
	}
	return c
}

// specTiers: the first 1,000 free, then 0.002 each plus 5 flat up to 10,000, then 0.001.
const specTiers = `[
	{"up_to": 1000, "unit_price": "0"},
	{"up_to": 10000, "unit_price": "0.002", "flat_fee": "5"},
	{"up_to": null, "unit_price": "0.001"}]`

const (
	standardJSON   = `{"meter": "api_calls", "model": "standard", "unit_price": "0.002"}`
	graduatedJSON  = `{"meter": "api_calls", "model": "graduated", "tiers": ` + specTiers + `}`
	volumeJSON     = `{"meter": "api_calls", "model": "volume", "tiers": ` + specTiers + `}`
	packageJSON    = `{"meter": "sms", "model": "package", "package_size": 1000, "price": "2", "free_units": 100}`
	percentageJSON = `{"meter": "payments", "model": "percentage", "rate": "1.5", "fixed_fee": "0.10"}`
)

func TestPrice(t *testing.T) {
	events := []decimal.Decimal{dec("100"), dec("250.50"), dec("49.50")}
	payments := pricing.Usage{Quantity: decimal.Sum(events[0], events[1:]...), Events: int64(len(events))}

	tests := []struct {
		name   string
		charge string
		usage  pricing.Usage
		exact  string // major units, unrounded
		minor  int64  // rounded for usd
	}{
		{"standard", standardJSON, qty("1234.5"), "2.469", 247},
		{"standard nothing used", standardJSON, qty("0"), "0", 0},

		{"graduated nothing used pays no flat fee", graduatedJSON, qty("0"), "0", 0},
		{"graduated within the free tier", graduatedJSON, qty("1000"), "0", 0},
		{"graduated one unit into tier 2", graduatedJSON, qty("1001"), "5.002", 500},
		{"graduated at the end of tier 2", graduatedJSON, qty("10000"), "23", 2300},
		{"graduated into the open tier", graduatedJSON, qty("30000"), "43", 4300},
		{"graduated fractional", graduatedJSON, qty("1000.5"), "5.001", 500},

		{"volume nothing used", volumeJSON, qty("0"), "0", 0},
		{"volume in the free tier", volumeJSON, qty("1000"), "0", 0},
		{"volume in tier 2", volumeJSON, qty("1001"), "7.002", 700},
		{"volume at the end of tier 2", volumeJSON, qty("10000"), "25", 2500},
		{"volume in the open tier", volumeJSON, qty("30000"), "30", 3000},

		{"package within free units", packageJSON, qty("100"), "0", 0},
		{"package first unit starts a package", packageJSON, qty("101"), "2", 200},
		{"package exactly one package", packageJSON, qty("1100"), "2", 200},
		{"package one unit starts another", packageJSON, qty("1101"), "4", 400},
		{"package a sliver starts another", packageJSON, qty("1100.0000000000000000001"), "4", 400},

		{"percentage plus fee per event", percentageJSON, payments, "6.3", 630},
		{"percentage nothing used", percentageJSON, pricing.Usage{}, "0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pricing.Price(decode(t, tt.charge), tt.usage)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(dec(tt.exact)) {
				t.Errorf("Price = %s, want %s", got, tt.exact)
			}
			if minor := pricing.Round(got, "usd"); minor != tt.minor {
				t.Errorf("Round(%s) = %d, want %d", got, minor, tt.minor)
			}
		})
	}
}

func TestPriceRejects(t *testing.T) {
	tests := []struct {
		name   string
		charge string
		usage  pricing.Usage
	}{
		{"invalid charge", `{"meter": "api_calls", "model": "standard"}`, qty("1")},
		{"negative quantity", standardJSON, qty("-1")},
		{"negative events", percentageJSON, pricing.Usage{Events: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := pricing.Price(decode(t, tt.charge), tt.usage); err == nil {
				t.Errorf("Price = %s, want an error", got)
			}
		})
	}
}

func TestRound(t *testing.T) {
	tests := []struct {
		amount   string
		currency string
		want     int64
	}{
		{"0.005", "usd", 1},
		{"0.0049", "usd", 0},
		{"-0.005", "usd", -1}, // half away from zero
		{"100.5", "jpy", 101},
		{"100.5", "JPY", 101},
		{"1.0005", "kwd", 1001},
		{"1.00049", "kwd", 1000},
		{"20", "eur", 2000},
		{"0.125", "zzz", 13}, // unknown currencies have 2 places
	}
	for _, tt := range tests {
		if got := pricing.Round(dec(tt.amount), tt.currency); got != tt.want {
			t.Errorf("Round(%s, %s) = %d, want %d", tt.amount, tt.currency, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	valid := []string{standardJSON, graduatedJSON, volumeJSON, packageJSON, percentageJSON,
		`{"meter": "sms", "model": "package", "package_size": 0.5, "price": "0"}`,
		`{"meter": "payments", "model": "percentage", "rate": "100"}`,
		`{"meter": "api_calls", "model": "volume", "tiers": [{"up_to": null, "unit_price": "1"}]}`,
	}
	for _, doc := range valid {
		if errs := decode(t, doc).Validate("charges[2]"); errs != nil {
			t.Errorf("Validate(%s) = %v, want none", doc, errs)
		}
	}

	tests := []struct {
		name   string
		charge string
		fields []string // under charges[2]
	}{
		{"unknown model", `{"meter": "api_calls", "model": "tiered", "unit_price": "1"}`, []string{"model"}},
		{"missing meter", `{"model": "standard", "unit_price": "1"}`, []string{"meter"}},
		{"tiers not ascending", `{"meter": "m", "model": "graduated", "tiers": [
			{"up_to": 1000, "unit_price": "0"}, {"up_to": 1000, "unit_price": "1"},
			{"up_to": 500, "unit_price": "1"}, {"up_to": 2000, "unit_price": "1"}, {"up_to": null, "unit_price": "1"}]}`,
			[]string{"tiers[1].up_to", "tiers[2].up_to"}},
		{"first bound not positive", `{"meter": "m", "model": "volume", "tiers": [
			{"up_to": 0, "unit_price": "1"}, {"up_to": null, "unit_price": "1"}]}`, []string{"tiers[0].up_to"}},
		{"last tier not open-ended", `{"meter": "m", "model": "volume", "tiers": [
			{"up_to": 1000, "unit_price": "0"}, {"up_to": 2000, "unit_price": "1"}]}`, []string{"tiers[1].up_to"}},
		{"open-ended tier not last", `{"meter": "m", "model": "graduated", "tiers": [
			{"up_to": null, "unit_price": "0"}, {"up_to": null, "unit_price": "1"}]}`, []string{"tiers[0].up_to"}},
		{"no tiers", `{"meter": "m", "model": "graduated", "tiers": []}`, []string{"tiers"}},
		{"tier without unit price", `{"meter": "m", "model": "graduated", "tiers": [{"up_to": null, "flat_fee": "1"}]}`,
			[]string{"tiers[0].unit_price"}},
		{"negative price", `{"meter": "m", "model": "standard", "unit_price": "-0.01"}`, []string{"unit_price"}},
		{"negative flat fee", `{"meter": "m", "model": "volume", "tiers": [{"up_to": null, "unit_price": "1", "flat_fee": "-5"}]}`,
			[]string{"tiers[0].flat_fee"}},
		{"price as JSON number", `{"meter": "m", "model": "standard", "unit_price": 0.002}`, []string{"unit_price"}},
		{"tier price as JSON number", `{"meter": "m", "model": "graduated", "tiers": [{"up_to": null, "unit_price": "1", "flat_fee": 5}]}`,
			[]string{"tiers[0].flat_fee"}},
		{"package_size 0", `{"meter": "m", "model": "package", "package_size": 0, "price": "2"}`, []string{"package_size"}},
		{"negative free units", `{"meter": "m", "model": "package", "package_size": 10, "price": "2", "free_units": -1}`,
			[]string{"free_units"}},
		{"package without price", `{"meter": "m", "model": "package", "package_size": 10}`, []string{"price"}},
		{"rate 101", `{"meter": "m", "model": "percentage", "rate": "101"}`, []string{"rate"}},
		{"negative rate", `{"meter": "m", "model": "percentage", "rate": "-1"}`, []string{"rate"}},
		{"rate as JSON number", `{"meter": "m", "model": "percentage", "rate": 1.5}`, []string{"rate"}},
		{"fields of another model", `{"meter": "m", "model": "standard", "unit_price": "1", "rate": "1.5", "tiers": []}`,
			[]string{"tiers", "rate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := decode(t, tt.charge).Validate("charges[2]")
			var got []string
			for _, e := range errs {
				if e.Message == "" {
					t.Errorf("%s has no message", e.Field)
				}
				got = append(got, e.Field)
			}
			want := make([]string, len(tt.fields))
			for i, f := range tt.fields {
				want[i] = "charges[2]." + f
			}
			if !slices.Equal(got, want) {
				t.Errorf("Validate fields = %q, want %q (errors: %v)", got, want, errs)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	// A price that is not a decimal at all cannot be decoded, let alone validated.
	var c pricing.Charge
	if err := json.Unmarshal([]byte(`{"meter": "m", "model": "standard", "unit_price": "cheap"}`), &c); err == nil {
		t.Error("decoding a non-decimal price succeeded")
	}

	// Prices go out as strings in major units, and come back as the same values.
	in := decode(t, percentageJSON)
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"meter":"payments","model":"percentage","rate":"1.5","fixed_fee":"0.1"}`; string(b) != want {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
	out := decode(t, string(b))
	if errs := out.Validate(""); errs != nil {
		t.Errorf("re-decoded charge is invalid: %v", errs)
	}
	if !out.Rate.Equal(in.Rate.Decimal) || !out.FixedFee.Equal(in.FixedFee.Decimal) {
		t.Errorf("round trip: %s, %s; want %s, %s", out.Rate, out.FixedFee, in.Rate, in.FixedFee)
	}
}

// TestTierProperties checks, over random tiers and quantities, that graduated prices never
// fall as usage grows, and that at each tier's bound a volume charge is that tier's formula.
func TestTierProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(4217, 1))
	for range 200 {
		tiers := randomTiers(r)
		grad := pricing.Charge{Meter: "m", Model: pricing.Graduated, Tiers: tiers}
		vol := pricing.Charge{Meter: "m", Model: pricing.Volume, Tiers: tiers}
		if errs := grad.Validate(""); errs != nil {
			t.Fatalf("random tiers are invalid: %v", errs)
		}

		// Quantities at, just below and just above every bound, plus some at random.
		var qs []decimal.Decimal
		epsilon := decimal.New(1, -3)
		for _, tier := range tiers[:len(tiers)-1] {
			qs = append(qs, *tier.UpTo, tier.UpTo.Sub(epsilon), tier.UpTo.Add(epsilon))
		}
		for range 20 {
			qs = append(qs, decimal.New(r.Int64N(2_000_000), -3))
		}
		slices.SortFunc(qs, decimal.Decimal.Cmp)

		prev := decimal.Zero
		for _, q := range qs {
			got := mustPrice(t, grad, q)
			if got.LessThan(prev) {
				t.Fatalf("graduated %v: price falls to %s at %s from %s", tiers, got, q, prev)
			}
			prev = got
		}

		for _, tier := range tiers[:len(tiers)-1] {
			bound := *tier.UpTo
			want := bound.Mul(tier.UnitPrice.Decimal)
			if tier.FlatFee != nil {
				want = want.Add(tier.FlatFee.Decimal)
			}
			if got := mustPrice(t, vol, bound); !got.Equal(want) {
				t.Fatalf("volume %v at %s = %s, want %s", tiers, bound, got, want)
			}
		}
	}
}

// randomTiers answers one to five valid tiers with fractional bounds and prices.
func randomTiers(r *rand.Rand) []pricing.Tier {
	tiers := make([]pricing.Tier, 1+r.IntN(5))
	var bound decimal.Decimal
	for i := range tiers {
		tiers[i].UnitPrice = &pricing.DecimalString{Decimal: decimal.New(r.Int64N(10_000), -4)}
		if r.IntN(2) == 0 {
			tiers[i].FlatFee = &pricing.DecimalString{Decimal: decimal.New(r.Int64N(1_000), -1)}
		}
		if i < len(tiers)-1 {
			bound = bound.Add(decimal.New(1+r.Int64N(500_000), -3))
			tiers[i].UpTo = new(bound)
		}
	}
	return tiers
}

func mustPrice(t *testing.T, c pricing.Charge, q decimal.Decimal) decimal.Decimal {
	t.Helper()
	amount, err := pricing.Price(c, pricing.Usage{Quantity: q})
	if err != nil {
		t.Fatal(err)
	}
	return amount
}

func TestInvoice(t *testing.T) {
	tiny := `{"meter": "pings", "model": "standard", "unit_price": "0.005"}`
	charges := []pricing.Charge{
		decode(t, graduatedJSON),
		decode(t, percentageJSON),
		decode(t, packageJSON), // no sms sent: a line for 0
		decode(t, tiny),
		decode(t, tiny), // half a cent twice is two rounded cents, not one
	}
	usage := map[string]pricing.Usage{
		"api_calls": qty("1001"),
		"payments":  {Quantity: dec("400.00"), Events: 3},
		"pings":     qty("1"),
	}

	lines, subtotal, err := pricing.Invoice("usd", dec("20"), charges, usage)
	if err != nil {
		t.Fatal(err)
	}
	want := []pricing.Line{
		{Description: "Base fee", Quantity: dec("1"), Amount: 2000},
		{Description: "api_calls (graduated)", Meter: "api_calls", Quantity: dec("1001"), Amount: 500},
		{Description: "payments (percentage)", Meter: "payments", Quantity: dec("400"), Amount: 630},
		{Description: "sms (package)", Meter: "sms", Quantity: dec("0"), Amount: 0},
		{Description: "pings (standard)", Meter: "pings", Quantity: dec("1"), Amount: 1},
		{Description: "pings (standard)", Meter: "pings", Quantity: dec("1"), Amount: 1},
	}
	if !slices.EqualFunc(lines, want, func(a, b pricing.Line) bool {
		return a.Description == b.Description && a.Meter == b.Meter && a.Quantity.Equal(b.Quantity) && a.Amount == b.Amount
	}) {
		t.Errorf("lines:\n got %v\nwant %v", lines, want)
	}
	if subtotal != 3132 {
		t.Errorf("subtotal = %d, want 3132", subtotal)
	}

	// Without a base fee there is no line for it.
	lines, subtotal, err = pricing.Invoice("usd", decimal.Zero, charges[:1], usage)
	if err != nil || len(lines) != 1 || lines[0].Meter != "api_calls" || subtotal != 500 {
		t.Errorf("Invoice without base fee = %v, %d, %v; want only the api_calls line, 500", lines, subtotal, err)
	}
}

func TestInvoiceRejects(t *testing.T) {
	tests := []struct {
		name    string
		baseFee string
		charges []pricing.Charge
		usage   map[string]pricing.Usage
	}{
		{"negative base fee", "-1", nil, nil},
		{"invalid charge", "0", []pricing.Charge{decode(t, standardJSON), {Meter: "m", Model: "flat"}}, nil},
		{"negative usage", "0", []pricing.Charge{decode(t, standardJSON)}, map[string]pricing.Usage{"api_calls": qty("-5")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if lines, subtotal, err := pricing.Invoice("usd", dec(tt.baseFee), tt.charges, tt.usage); err == nil {
				t.Errorf("Invoice = %v, %d; want an error", lines, subtotal)
			}
		})
	}
}

// TestInvoiceAtTheBound: no usage makes an invoice fail. Usage values are at most 10^15 each
// but their totals are not bounded, so an amount may pass what an invoice can hold: the
// subtotal is then capped at MaxAmount, each line taking what the lines before it left, and
// the lines still add up to the subtotal.
func TestInvoiceAtTheBound(t *testing.T) {
	const events = 1_000_000
	atBound := pricing.Usage{Quantity: dec("1e15").Mul(decimal.NewFromInt(events)), Events: events}
	huge := map[string]pricing.Usage{"api_calls": atBound, "sms": atBound, "payments": atBound, "pings": atBound}
	tiny := `{"meter": "pings", "model": "standard", "unit_price": "0.000000000001"}` // 10^9 usd: fits
	for _, tt := range []struct {
		name     string
		currency string
		baseFee  string
		charges  []string
		want     []int64
	}{
		{"standard", "usd", "0", []string{standardJSON}, []int64{pricing.MaxAmount}},
		{"graduated", "usd", "0", []string{graduatedJSON}, []int64{pricing.MaxAmount}},
		{"volume", "usd", "0", []string{volumeJSON}, []int64{pricing.MaxAmount}},
		{"package", "usd", "0", []string{packageJSON}, []int64{pricing.MaxAmount}},
		{"percentage", "usd", "0", []string{percentageJSON}, []int64{pricing.MaxAmount}},
		{"every model, after a base fee", "usd", "20", []string{standardJSON, graduatedJSON, volumeJSON, packageJSON, percentageJSON},
			[]int64{2000, pricing.MaxAmount - 2000, 0, 0, 0, 0}},
		{"a line that fits stays exact", "usd", "20", []string{tiny, standardJSON},
			[]int64{2000, 100_000_000_000, pricing.MaxAmount - 2000 - 100_000_000_000}},
		{"no minor unit", "jpy", "0", []string{standardJSON}, []int64{pricing.MaxAmount}},
		{"three decimals", "kwd", "0", []string{percentageJSON}, []int64{pricing.MaxAmount}},
		{"within the cap", "usd", "0", []string{tiny}, []int64{100_000_000_000}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var charges []pricing.Charge
			for _, doc := range tt.charges {
				charges = append(charges, decode(t, doc))
			}
			lines, subtotal, err := pricing.Invoice(tt.currency, dec(tt.baseFee), charges, huge)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			var sum int64
			for _, l := range lines {
				got = append(got, l.Amount)
				sum += l.Amount
			}
			if !slices.Equal(got, tt.want) || subtotal != sum {
				t.Errorf("amounts %v, subtotal %d; want %v adding up to the subtotal", got, subtotal, tt.want)
			}
		})
	}

	// A base fee beyond the cap is capped too.
	lines, subtotal, err := pricing.Invoice("usd", dec("99999999999999.999999"), nil, nil)
	if err != nil || len(lines) != 1 || lines[0].Amount != pricing.MaxAmount || subtotal != pricing.MaxAmount {
		t.Errorf("Invoice with a base fee past the cap = %v, %d, %v; want one line of MaxAmount", lines, subtotal, err)
	}
}

func BenchmarkInvoice(b *testing.B) {
	docs := []string{standardJSON, graduatedJSON, volumeJSON, packageJSON, percentageJSON}
	var charges []pricing.Charge
	for range 2 {
		for _, doc := range docs {
			charges = append(charges, decode(b, doc))
		}
	}
	usage := map[string]pricing.Usage{
		"api_calls": qty("123456.789"),
		"sms":       qty("4321"),
		"payments":  {Quantity: dec("98765.43"), Events: 321},
	}
	for b.Loop() {
		if _, _, err := pricing.Invoice("usd", dec("49"), charges, usage); err != nil {
			b.Fatal(err)
		}
	}
}
