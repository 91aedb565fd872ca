package httpx_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

type fuzzItem struct {
	Key   string `json:"key"`
	Value int64  `json:"value"`
}

// fuzzBody has a field of each shape request bodies use.
type fuzzBody struct {
	Name  string     `json:"name"`
	Count int        `json:"count"`
	Note  *string    `json:"note"`
	Limit *int32     `json:"limit"`
	Flag  bool       `json:"flag"`
	Meta  fuzzItem   `json:"meta"`
	Inner *fuzzItem  `json:"inner"`
	Tags  []string   `json:"tags"`
	Items []fuzzItem `json:"items"`
}

func (b *fuzzBody) Validate() error {
	var f errs.Fields
	if len(b.Name) > 64 {
		f.Add("name", "must be at most 64 bytes")
	}
	if b.Count < 0 {
		f.Add("count", "must not be negative")
	}
	if b.Limit != nil && (*b.Limit < 1 || *b.Limit > 200) {
		f.Add("limit", "must be from 1 to 200")
	}
	if b.Inner != nil && b.Inner.Key == "" {
		f.Add("inner.key", "is required")
	}
	if len(b.Tags) > 10 {
		f.Add("tags", "at most 10")
	}
	for i, it := range b.Items {
		if it.Value < 0 {
			f.Add(fmt.Sprintf("items[%d].value", i), "must not be negative")
		}
	}
	return f.Err()
}

// strings answers every string of b.
func (b *fuzzBody) strings() []string {
	out := append([]string{b.Name, b.Meta.Key}, b.Tags...)
	if b.Note != nil {
		out = append(out, *b.Note)
	}
	if b.Inner != nil {
		out = append(out, b.Inner.Key)
	}
	for _, it := range b.Items {
		out = append(out, it.Key)
	}
	return out
}

// storable reports whether s, decoded from data, is text PostgreSQL can store as the client
// sent it: no NUL, and no U+FFFD unless the client sent one (encoding/json puts U+FFFD in place
// of invalid UTF-8 and of unpaired surrogates).
func storable(s string, data []byte) bool {
	if strings.ContainsRune(s, 0) {
		return false
	}
	return !strings.ContainsRune(s, utf8.RuneError) ||
		bytes.Contains(data, []byte("\uFFFD")) || bytes.Contains(bytes.ToLower(data), []byte(`\ufffd`))
}

// allStrings appends every string and member name in a decoded JSON value to out.
func allStrings(v any, out []string) []string {
	switch v := v.(type) {
	case string:
		out = append(out, v)
	case []any:
		for _, e := range v {
			out = allStrings(e, out)
		}
	case map[string]any:
		for k, e := range v {
			out = allStrings(e, append(out, k))
		}
	}
	return out
}

// FuzzDecode: DecodeBytes never panics, and answers either nil for a valid JSON object that
// survives a round trip and holds only storable strings (no NUL, no U+FFFD the client did not
// send), or a validation error that names the fields at fault.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"name":"a","count":1,"note":"n","limit":5,"flag":true,"meta":{"key":"m","value":2},"inner":{"key":"k","value":-3},"tags":["x","y"],"items":[{"key":"i","value":4}]}`,
		`{}`,
		`null`,
		`  {"name":"\u00e9\ud83d\ude00"}  `,
		`{"NAME":"case-insensitive"}`,
		`{"note":null,"inner":null,"tags":[],"items":null}`,
		`{"name":"a","name":"b"}`,
		``,
		`   `,
		`{"name":`,
		`{"name":"a"} trailing`,
		`{"name":"a"}{"name":"b"}`,
		`[]`,
		`"string"`,
		`42`,
		`{"count":"1"}`,
		`{"count":1.5}`,
		`{"count":1e400}`,
		`{"limit":2147483648}`,
		`{"meta":{"value":"x"}}`,
		`{"items":[{"key":"a","extra":1}]}`,
		`{"unknown":1}`,
		`{"":1}`,
		`{"count":-1,"inner":{},"items":[{"value":-1}]}`,
		"{\"name\":\"\xff\xfe\"}",
		`{"tags":[1]}`,
		`{"name":"a\u0000b"}`,
		`{"name":"\\u0000"}`,
		`{"name":"\ud800"}`,
		`{"name":"\udc00\ud800"}`,
		`{"name":"\ud83d\ude00"}`,
		`{"name":"\ud83d\u0041"}`,
		"{\"name\":\"\xed\xa0\x80\"}",
		"{\"name\":\"\xc3\"}",
		`{"tags":["x","\u0000"]}`,
		`{"items":[{"key":"a"},{"key":"\u0000","value":1}]}`,
		`{"meta":{"key":"\uD800\uDC00"}}`,
		`{"na\u0000me":"x"}`,
		"{\"na\xffme\":\"x\"}",
		`{"name":"\u0000`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// CheckStrings, which DecodeBytes relies on, passes a document only if every string
		// in it, at any depth and member names included, is storable.
		if httpx.CheckStrings(data) == nil && json.Valid(data) {
			var doc any
			json.Unmarshal(data, &doc)
			for _, s := range allStrings(doc, nil) {
				if !storable(s, data) {
					t.Fatalf("%q: CheckStrings passed %q", data, s)
				}
			}
		}

		var v fuzzBody
		err := httpx.DecodeBytes(data, &v)
		if err != nil {
			var e *errs.Error
			if !errors.As(err, &e) {
				t.Fatalf("%q: error %T %v, want an *errs.Error", data, err, err)
			}
			if e.Kind != errs.Invalid || e.Code != "validation_failed" {
				t.Fatalf("%q: kind %v code %q, want invalid validation_failed", data, e.Kind, e.Code)
			}
			if len(e.Fields) == 0 {
				t.Fatalf("%q: a validation error that names no field: %v", data, err)
			}
			for _, fe := range e.Fields {
				if fe.Field == "" || fe.Message == "" {
					t.Fatalf("%q: field error %+v does not say which field and why", data, fe)
				}
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("%q: accepted, but it is not valid JSON", data)
		}
		for _, s := range v.strings() {
			if !storable(s, data) {
				t.Fatalf("%q: accepted with %q, which PostgreSQL cannot store or the client did not send", data, s)
			}
		}
		out, err := json.Marshal(&v)
		if err != nil {
			t.Fatalf("%q: re-marshal %+v: %v", data, v, err)
		}
		var w fuzzBody
		if err := httpx.DecodeBytes(out, &w); err != nil {
			t.Fatalf("%q decoded to %s, which does not decode again: %v", data, out, err)
		}
		if !reflect.DeepEqual(v, w) {
			t.Fatalf("%q: round trip changed the value:\n%+v\n%+v", data, v, w)
		}
	})
}
