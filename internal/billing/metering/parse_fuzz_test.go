package metering

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"github.com/saasbase/saasbase/internal/platform/errs"
)

func ptr(s string) *string { return &s }

// fuzzMeters read events of type "t" in every way a meter can, and "u" with a latest meter.
var fuzzMeters = []Meter{
	{Key: "f_count", EventType: "t", Aggregation: AggCount},
	{Key: "f_max", EventType: "t", Aggregation: AggMax, ValueProperty: ptr("$.m.v")},
	{Key: "f_sum", EventType: "t", Aggregation: AggSum, ValueProperty: ptr("$.n"), GroupBy: map[string]string{"region": "$.region"}},
	{Key: "f_users", EventType: "t", Aggregation: AggUniqueCount, ValueProperty: ptr("$.user")},
	{Key: "f_latest", EventType: "u", Aggregation: AggLatest, ValueProperty: ptr("$.n")},
}

// FuzzParseEvents: whatever the body, ParseEvents does not panic; it refuses with a
// validation_failed naming events that exist, or everything it accepts is storable: every
// string is text, and every value a meter reads is within the bounds, as an independent
// reading (shopspring/decimal's) of the value sees it.
func FuzzParseEvents(f *testing.F) {
	for _, seed := range []string{
		`{"specversion":"1.0","id":"a","source":"s","type":"t","data":{"n":1,"m":{"v":"2.5"},"user":"u","region":"eu"}}`,
		`[{"specversion":"1.0","id":"a","source":"s","type":"t","data":{"n":1e15,"m":{"v":0.000000000001},"user":1}},` +
			`{"specversion":"1.0","id":"b","source":"s","type":"u","time":"2026-01-01T00:00:00Z","subject":"x","data":{"n":"1.5e3"}}]`,
		`{"specversion":"1.0","id":"a","source":"s","type":"u","ext1":"v","data":{"n":"+0.0"}}`,
		`{"specversion":"1.0","id":"a","source":"s","type":"t","data":{"n":-1100,"m":{"v":1},"user":"u"}}`,
		`{"specversion":"1.0","id":"a","source":"s","type":"t","data":{"n":1e309,"m":{"v":1e30},"user":"u"}}`,
		`{"specversion":"1.0","id":"a","source":"s","type":"t","data":{"n":"1e999999999","m":{"v":"1e-999999999"},"user":"u"}}`,
		`{"specversion":"1.0","id":"a","source":"s","type":"t","data":{"n":"NaN","m":{"v":"Infinity"},"user":"u"}}`,
		`{"specversion":"1.0","id":"a","source":"s","type":"t","data":{"n":1000000000000000.1,"m":{"v":1e-13},"user":"u"}}`,
		`{"specversion":"1.0","id":"a","source":"s","type":"t","data":{"n":2.500000000000000,"m":{"v":"-0"},"user":"u"}}`,
		`{"specversion":"1.0","id":"a\u0000","source":"s","type":"t","data":{"n":1,"m":{"v":1},"user":"\ud800"}}`,
		"{\"specversion\":\"1.0\",\"id\":\"a\",\"source\":\"s\xff\",\"type\":\"t\",\"data\":{\"n\":1,\"m\":{\"v\":1},\"user\":\"u\"}}",
		`{"specversion":"1.0","id":"a","source":"s","type":"t","data":{"n":1,"m":{"v":1},"user":"\ud83d\ude00","k\u0000":[{"x":"\udc00"}]}}`,
		// data_base64: JSON inside (counted), JSON with NUL inside, opaque bytes, both members.
		`{"specversion":"1.0","id":"a","source":"s","type":"u","datacontenttype":"application/json","data_base64":"eyJuIjoiMi41In0="}`,
		`{"specversion":"1.0","id":"a","source":"s","type":"u","datacontenttype":"application/json","data_base64":"eyJuIjoiXHUwMDAwIn0="}`,
		`{"specversion":"1.0","id":"a","source":"s","type":"t","datacontenttype":"text/plain","data_base64":"bj0x"}`,
		`{"specversion":"1.0","id":"a","source":"s","type":"u","data":{"n":1},"data_base64":"e30="}`,
		`{"specversion":"1.0","id":"a","source":"s","type":"u","data":[1,{"n":2}]}`,
		`[]`, `[1]`, `null`, `"event"`, `{}`, `{"data":[]}`,
	} {
		f.Add([]byte(seed))
	}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := ParseEvents(body, fuzzMeters, now)
		if err != nil {
			var e *errs.Error
			if !errors.As(err, &e) || e.Kind != errs.Invalid || e.Code != "validation_failed" {
				t.Fatalf("%q: error %v, want validation_failed", body, err)
			}
			for _, fe := range e.Fields {
				if fe.Index != nil && (*fe.Index < 0 || *fe.Index >= len(evs)) {
					t.Fatalf("%q: an error names event %d of %d", body, *fe.Index, len(evs))
				}
			}
			return
		}
		raws := []json.RawMessage{bytes.TrimSpace(body)}
		if len(raws[0]) > 0 && raws[0][0] == '[' {
			raws = nil
			if err := json.Unmarshal(body, &raws); err != nil {
				t.Fatalf("%q: accepted, but it is not JSON: %v", body, err)
			}
		}
		if len(raws) != len(evs) {
			t.Fatalf("%q: %d events accepted, %d sent", body, len(evs), len(raws))
		}
		for i, raw := range raws {
			if !utf8.Valid(raw) {
				t.Fatalf("event %d accepted with invalid UTF-8: %q", i, raw)
			}
			var doc any
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatalf("event %d accepted, but it is not JSON: %q", i, raw)
			}
			if s, ok := stringWithNUL(doc); ok {
				t.Fatalf("event %d accepted with NUL in %q: %q", i, s, raw)
			}
			// encoding/json decodes a lone surrogate escape as U+FFFD: there may be no more
			// of them decoded than were sent, raw or escaped.
			sent := strings.Count(string(raw), "\uFFFD") + strings.Count(strings.ToLower(string(raw)), `\ufffd`)
			if n := countReplacement(doc); n > sent {
				t.Fatalf("event %d accepted with a lone surrogate: %q", i, raw)
			}
			// What is stored as data, decoded from data_base64 perhaps, is text JSON too.
			var data any
			if !utf8.Valid(evs[i].Data) || json.Unmarshal(evs[i].Data, &data) != nil {
				t.Fatalf("event %d accepted with data %q that is not JSON", i, evs[i].Data)
			}
			if s, ok := stringWithNUL(data); ok {
				t.Fatalf("event %d accepted with NUL in its data's %q: %q", i, s, raw)
			}
			for _, m := range fuzzMeters {
				if m.EventType != evs[i].Type || m.ValueProperty == nil || m.Aggregation == AggUniqueCount {
					continue
				}
				v, _ := lookup(evs[i].data, *m.ValueProperty)
				var text string
				switch x := v.(type) {
				case json.Number:
					text = x.String()
				case string:
					text = x
				default:
					t.Fatalf("event %d accepted with %T %v at %s", i, v, v, *m.ValueProperty)
				}
				want, ok := withinBounds(text)
				if !ok {
					t.Fatalf("event %d accepted with %q at %s: out of bounds", i, text, *m.ValueProperty)
				}
				if got, err := numberAt(evs[i].data, *m.ValueProperty); err != nil || !got.Equal(want) {
					t.Fatalf("event %d: %q at %s read as %v, %v; want %v", i, text, *m.ValueProperty, got, err, want)
				}
			}
		}
	})
}

// withinBounds is the API's rule on a usage value, read with shopspring/decimal rather than
// parseValue: a finite number, 0 to 10^15, with at most 12 decimal places as written.
func withinBounds(s string) (decimal.Decimal, bool) {
	d, err := decimal.NewFromString(s)
	if err != nil || d.Sign() < 0 || d.Exponent() < -maxValuePlaces {
		return d, false
	}
	// Past 10^20 the comparison would have to build a power of ten as large as the value.
	if !d.IsZero() && d.Exponent() > 20 {
		return d, false
	}
	return d, d.LessThanOrEqual(decimal.New(1, maxValueDigits))
}

// countReplacement counts U+FFFD in the keys and strings of a decoded JSON document.
func countReplacement(doc any) int {
	n := 0
	switch x := doc.(type) {
	case string:
		n = strings.Count(x, "\uFFFD")
	case []any:
		for _, v := range x {
			n += countReplacement(v)
		}
	case map[string]any:
		for k, v := range x {
			n += strings.Count(k, "\uFFFD") + countReplacement(v)
		}
	}
	return n
}

// stringWithNUL answers a key or string value of a decoded JSON document that holds NUL.
func stringWithNUL(doc any) (string, bool) {
	switch x := doc.(type) {
	case string:
		return x, strings.ContainsRune(x, 0)
	case []any:
		for _, v := range x {
			if s, ok := stringWithNUL(v); ok {
				return s, true
			}
		}
	case map[string]any:
		for k, v := range x {
			if strings.ContainsRune(k, 0) {
				return k, true
			}
			if s, ok := stringWithNUL(v); ok {
				return s, true
			}
		}
	}
	return "", false
}
