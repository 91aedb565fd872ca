package metering

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"mime"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// Ingestion limits.
const (
	MaxBatch        = 1000
	MaxUsageBody    = 5 << 20
	maxFuture       = 5 * time.Minute
	maxAttributeLen = 256
)

// UsageEvent is a CloudEvent of usage.
type UsageEvent struct {
	Source  string
	ID      string
	Type    string
	Subject *string
	Time    time.Time
	Data    json.RawMessage // JSON data as stored: "{}" when there is none a meter could read
	data    any             // Data decoded with exact numbers; nil when there is none
}

var extensionName = regexp.MustCompile(`^[a-z0-9]{1,20}$`)

// batchErrors collects problems by event index, so a client learns every problem at once.
type batchErrors []errs.FieldError

func (b *batchErrors) add(i int, field, code, msg string) {
	*b = append(*b, errs.FieldError{Index: &i, Field: field, Code: code, Message: msg})
}

func (b batchErrors) err() error {
	if len(b) == 0 {
		return nil
	}
	return &errs.Error{Kind: errs.Invalid, Code: "validation_failed", Detail: "some events are invalid; none was stored", Fields: b}
}

// ParseEvents reads one CloudEvent or an array of up to MaxBatch, and checks every one of
// them against the meters before anything is stored: all or nothing.
func ParseEvents(body []byte, meters []Meter, now time.Time) ([]UsageEvent, error) {
	body = bytes.TrimSpace(body)
	var raws []json.RawMessage
	if len(body) > 0 && body[0] == '[' {
		if err := json.Unmarshal(body, &raws); err != nil {
			return nil, errs.Field("body", "must be a CloudEvent or an array of CloudEvents")
		}
		if len(raws) == 0 || len(raws) > MaxBatch {
			return nil, errs.Field("body", fmt.Sprintf("a batch holds 1 to %d events", MaxBatch))
		}
	} else {
		raws = []json.RawMessage{body}
	}
	var problems batchErrors
	out := make([]UsageEvent, len(raws))
	for i, raw := range raws {
		out[i] = parseEvent(i, raw, meters, now, &problems)
	}
	return out, problems.err()
}

func parseEvent(i int, raw json.RawMessage, meters []Meter, now time.Time, problems *batchErrors) UsageEvent {
	var attrs map[string]json.RawMessage
	if err := json.Unmarshal(raw, &attrs); err != nil {
		problems.add(i, "", "invalid", "must be a JSON object (a CloudEvent)")
		return UsageEvent{}
	}
	// Nothing else is worth checking in an event that cannot be stored as it was sent.
	if err := httpx.CheckStrings(raw); err != nil {
		for _, f := range errs.FieldsOf(err) {
			problems.add(i, f.Field, "invalid", f.Message)
		}
		return UsageEvent{}
	}
	str := func(name string, required bool) (string, bool) {
		v, ok := attrs[name]
		if !ok {
			if required {
				problems.add(i, name, "required", "is required")
			}
			return "", false
		}
		var s string
		if json.Unmarshal(v, &s) != nil || (required && s == "") || len(s) > maxAttributeLen {
			problems.add(i, name, "invalid", fmt.Sprintf("must be a string of 1 to %d characters", maxAttributeLen))
			return "", false
		}
		return s, true
	}
	var ev UsageEvent
	if v, _ := str("specversion", true); v != "" && v != "1.0" {
		problems.add(i, "specversion", "invalid", `must be "1.0"`)
	}
	ev.ID, _ = str("id", true)
	ev.Source, _ = str("source", true)
	ev.Type, _ = str("type", true)
	if s, ok := str("subject", false); ok {
		ev.Subject = &s
	}
	ev.Time = now
	if s, ok := str("time", false); ok {
		t, err := time.Parse(time.RFC3339Nano, s)
		switch {
		case err != nil:
			problems.add(i, "time", "invalid", "must be an RFC 3339 time")
		case t.After(now.Add(maxFuture)):
			problems.add(i, "time", "invalid", "is more than 5 minutes in the future")
		default:
			ev.Time = t.UTC()
		}
	}
	ct, _ := str("datacontenttype", false)
	ev.Data, ev.data = eventData(i, attrs, ct, problems)
	for name, v := range attrs {
		switch name {
		case "specversion", "id", "source", "type", "subject", "time", "data", "data_base64", "datacontenttype", "dataschema":
			continue
		}
		if !extensionName.MatchString(name) || len(v) == 0 || (v[0] == '{' || v[0] == '[') {
			problems.add(i, name, "invalid", "an extension attribute has a lowercase alphanumeric name and a scalar value")
		}
	}
	// A meter reads values only from JSON data: say so where the data is not JSON.
	opaque := ""
	if _, ok := attrs["data_base64"]; ok && ev.data == nil {
		opaque = "; data_base64 without a JSON datacontenttype is bytes no meter can read"
		if ct != "" {
			opaque = "; data of media type " + strconv.Quote(ct) + " is not JSON, so no meter can read it"
		}
	}
	// Each value is checked once, however many meters read it: one problem per field.
	checked := map[string]bool{}
	for _, m := range meters {
		if m.EventType != ev.Type || m.ValueProperty == nil || checked[*m.ValueProperty] {
			continue
		}
		field := "data" + strings.TrimPrefix(*m.ValueProperty, "$")
		if m.Aggregation == AggUniqueCount {
			// Any value counts, but it must be there; it may yet be a number for another meter.
			if _, ok := lookup(ev.data, *m.ValueProperty); !ok {
				problems.add(i, field, "required", "is required by meter "+m.Key+opaque)
				checked[*m.ValueProperty] = true
			}
			continue
		}
		checked[*m.ValueProperty] = true
		if _, err := numberAt(ev.data, *m.ValueProperty); err != nil {
			problems.add(i, field, "invalid", err.Error()+" (meter "+m.Key+")"+opaque)
		}
	}
	return ev
}

// isJSON reports whether a datacontenttype is JSON, as the CloudEvents JSON format reads
// it: absent, application/json, or any */*+json media type.
func isJSON(contentType string) bool {
	if contentType == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// eventData reads an event's data: the data member, any JSON value (JSON null is no data),
// or data_base64, the standard member for data as bytes. Decoded bytes are data a meter can
// read when datacontenttype says they are JSON; other bytes are opaque: the event is kept and
// counted, but its bytes are not (no meter could read them, and nothing else does).
func eventData(i int, attrs map[string]json.RawMessage, contentType string, problems *batchErrors) (json.RawMessage, any) {
	raw, hasData := attrs["data"]
	b64, hasBase64 := attrs["data_base64"]
	field := "data"
	switch {
	case hasData && hasBase64:
		problems.add(i, "data", "invalid", "an event has data or data_base64, not both")
		return nil, nil
	case hasBase64:
		var s string
		b, err := []byte(nil), json.Unmarshal(b64, &s)
		if err == nil {
			b, err = base64.StdEncoding.DecodeString(s)
		}
		if err != nil {
			problems.add(i, "data_base64", "invalid", "must be a string in base64 (RFC 4648, standard alphabet, padded)")
			return nil, nil
		}
		// data_base64 with absent datacontenttype is bytes of unknown type, not JSON.
		if len(b) == 0 || contentType == "" || !isJSON(contentType) {
			return json.RawMessage("{}"), nil
		}
		if !json.Valid(b) {
			problems.add(i, "data_base64", "invalid", "must decode to JSON, as datacontenttype "+strconv.Quote(contentType)+" says")
			return nil, nil
		}
		if err := httpx.CheckStrings(b); err != nil {
			for _, f := range errs.FieldsOf(err) {
				problems.add(i, within("data_base64", f.Field), "invalid", f.Message)
			}
			return nil, nil
		}
		raw, field = b, "data_base64"
	}
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("{}"), nil
	}
	var data any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&data); err != nil {
		problems.add(i, field, "invalid", "must be JSON")
		return nil, nil
	}
	return raw, data
}

// within names a field of a document by its path inside it, as httpx.CheckStrings names
// it ("body" for the document itself).
func within(doc, path string) string {
	switch {
	case path == "body":
		return doc
	case strings.HasPrefix(path, "["):
		return doc + path
	}
	return doc + "." + path
}

// lookup follows a "$.a.b" path into decoded data.
func lookup(data any, path string) (any, bool) {
	cur := data
	for _, k := range pathKeys(path) {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[k]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// numberAt reads the usage value at path: a JSON number or a numeric string (parseValue).
func numberAt(data any, path string) (decimal.Decimal, error) {
	v, ok := lookup(data, path)
	if !ok {
		return decimal.Decimal{}, errors.New("is required")
	}
	switch x := v.(type) {
	case json.Number:
		return parseValue(x.String())
	case string:
		return parseValue(x)
	}
	return decimal.Decimal{}, errNotNumber
}

// Bounds of a usage value (docs/metering.md): a finite number from 0 to 10^15 with at most
// 12 decimal places. Within them every total is an exact numeric in PostgreSQL and a small
// decimal in Go, and no single event can swamp a period.
const (
	maxValueDigits = 15 // at most 10^15
	maxValuePlaces = 12 // digits after the point, as written once the exponent is applied
)

var (
	errNotNumber     = errors.New("must be a number or a numeric string")
	errNegative      = errors.New("must not be negative")
	errTooLarge      = fmt.Errorf("must be at most 10^%d", maxValueDigits)
	errTooManyPlaces = fmt.Errorf("must have at most %d decimal places", maxValuePlaces)
)

// parseValue reads a usage value written as a JSON number is ("12.5e-3"; in a string, a
// leading "+" too) and checks it against the bounds. It reads the digits and the exponent
// itself rather than handing them to an arbitrary-precision parser, so no power of ten is
// ever computed beyond the bounds: "1e999999999" costs what its eleven bytes cost.
//
// Decimal places are counted as written, as PostgreSQL's numeric keeps them: "2.50" has two,
// "15e-13" has thirteen. So whatever is accepted, PostgreSQL reads back (a jsonb number, or
// a string cast to numeric by the raw aggregates) within the same bounds.
func parseValue(s string) (decimal.Decimal, error) {
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg, s = s[0] == '-', s[1:]
	}
	mant, exp, hasExp := s, "", false
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant, exp, hasExp = s[:i], s[i+1:], true
	}
	whole, frac, _ := strings.Cut(mant, ".")
	if whole+frac == "" || !allDigits(whole) || !allDigits(frac) {
		return decimal.Decimal{}, errNotNumber
	}
	e := 0
	if hasExp {
		expNeg := exp != "" && exp[0] == '-'
		if exp != "" && (exp[0] == '-' || exp[0] == '+') {
			exp = exp[1:]
		}
		if exp == "" || !allDigits(exp) {
			return decimal.Decimal{}, errNotNumber
		}
		// An exponent of more than four digits puts any value out of bounds, zero included
		// (PostgreSQL cannot read 0e-99999), and parsing it could overflow.
		if exp = strings.TrimLeft(exp, "0"); len(exp) > 4 {
			if expNeg {
				return decimal.Decimal{}, errTooManyPlaces
			}
			return decimal.Decimal{}, errTooLarge
		}
		e, _ = strconv.Atoi(exp)
		if expNeg {
			e = -e
		}
	}
	if len(frac)-e > maxValuePlaces {
		return decimal.Decimal{}, errTooManyPlaces
	}
	// The value is coef × 10^scale, coef without leading or trailing zeros.
	coef := strings.TrimLeft(whole+frac, "0")
	trimmed := strings.TrimRight(coef, "0")
	scale := e - len(frac) + len(coef) - len(trimmed)
	coef = trimmed
	switch {
	case coef == "":
		return decimal.Zero, nil // however it is written, even "-0"
	case neg:
		return decimal.Decimal{}, errNegative
	case len(coef)+scale > maxValueDigits+1, len(coef)+scale == maxValueDigits+1 && coef != "1":
		return decimal.Decimal{}, errTooLarge
	}
	// Within the bounds coef has at most 28 digits and scale is in [-12, 15].
	n, _ := new(big.Int).SetString(coef, 10)
	return decimal.NewFromBigInt(n, int32(scale)), nil
}

func allDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// groupKey is the JSON object of an event's group values (sorted keys; missing groups left out).
func groupKey(m Meter, data any) string {
	g := map[string]string{}
	for name, path := range m.GroupBy {
		if v, ok := lookup(data, path); ok {
			g[name] = fmt.Sprint(v)
		}
	}
	b, _ := json.Marshal(g)
	return string(b)
}
