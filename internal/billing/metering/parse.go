package metering

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/saasbase/saasbase/internal/platform/errs"
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
	Data    json.RawMessage
	data    map[string]any // Data decoded with exact numbers
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
	ev.Data = attrs["data"]
	if len(ev.Data) == 0 || string(ev.Data) == "null" {
		ev.Data = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(ev.Data))
	dec.UseNumber()
	if err := dec.Decode(&ev.data); err != nil {
		problems.add(i, "data", "invalid", "must be a JSON object")
	}
	for name, v := range attrs {
		switch name {
		case "specversion", "id", "source", "type", "subject", "time", "data", "datacontenttype", "dataschema":
			continue
		}
		if !extensionName.MatchString(name) || len(v) == 0 || (v[0] == '{' || v[0] == '[') {
			problems.add(i, name, "invalid", "an extension attribute has a lowercase alphanumeric name and a scalar value")
		}
	}
	for _, m := range meters {
		if m.EventType != ev.Type || m.ValueProperty == nil || ev.data == nil {
			continue
		}
		if m.Aggregation == AggUniqueCount {
			if _, ok := lookup(ev.data, *m.ValueProperty); !ok {
				problems.add(i, "data"+strings.TrimPrefix(*m.ValueProperty, "$"), "required", "is required by meter "+m.Key)
			}
			continue
		}
		if _, err := numberAt(ev.data, *m.ValueProperty); err != nil {
			problems.add(i, "data"+strings.TrimPrefix(*m.ValueProperty, "$"), "invalid", err.Error()+" (meter "+m.Key+")")
		}
	}
	return ev
}

// lookup follows a "$.a.b" path into decoded data.
func lookup(data map[string]any, path string) (any, bool) {
	var cur any = data
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

// numberAt reads an exact decimal at path: a JSON number or a numeric string.
func numberAt(data map[string]any, path string) (decimal.Decimal, error) {
	v, ok := lookup(data, path)
	if !ok {
		return decimal.Decimal{}, fmt.Errorf("is required")
	}
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		return decimal.Decimal{}, fmt.Errorf("must be a number or a numeric string")
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("must be a number or a numeric string")
	}
	return d, nil
}

// groupKey is the JSON object of an event's group values (sorted keys; missing groups left out).
func groupKey(m Meter, data map[string]any) string {
	g := map[string]string{}
	for name, path := range m.GroupBy {
		if v, ok := lookup(data, path); ok {
			g[name] = fmt.Sprint(v)
		}
	}
	b, _ := json.Marshal(g)
	return string(b)
}
