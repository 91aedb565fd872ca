package httpx_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

type textTarget struct {
	Name  string                  `json:"name"`
	Tags  []string                `json:"tags"`
	Items []struct{ Name string } `json:"items"`
	Attrs map[string]string       `json:"attrs"`
	Raw   json.RawMessage         `json:"raw"`
	Meta  struct {
		Note string `json:"note"`
	} `json:"meta"`
}

// textRefused are bodies with a string PostgreSQL cannot store, and the path the answer
// must name.
var textRefused = []struct{ body, field string }{
	{`{"name":"a\u0000b"}`, "name"},
	{`{"name":"\u0000"}`, "name"},
	{"{\"name\":\"a\xffb\"}", "name"},
	{"{\"name\":\"\xc3\"}", "name"},             // a truncated sequence
	{"{\"name\":\"\xed\xa0\x80\"}", "name"},     // a surrogate encoded as UTF-8
	{"{\"name\":\"\xf4\x90\x80\x80\"}", "name"}, // past U+10FFFF
	{`{"name":"\ud800"}`, "name"},
	{`{"name":"\uDC00x"}`, "name"},
	{`{"name":"\ud83d\u0041"}`, "name"},
	{`{"tags":["ok","\u0000"]}`, "tags[1]"},
	{`{"items":[{"Name":"ok"},{"Name":"x"},{"Name":"\u0000"}]}`, "items[2].Name"},
	{`{"meta":{"note":"\u0000"}}`, "meta.note"},
	{`{"attrs":{"a\u0000":"x"}}`, "attrs"},
	{`{"attrs":{"k\u00e9":"\u0000"}}`, "attrs.ké"},
	{`{"raw":{"deep":[1,{"x":"\u0000"}]}}`, "raw.deep[1].x"},
	{`{"raw":"\u0000"}`, "raw"},
	{"{\"na\xffme\":1}", "body"},
	{`{"name":"ok", "tags":["\\", "\u0000"]}`, "tags[1]"},
}

// textAccepted are bodies whose strings are all storable, however they are escaped.
var textAccepted = []string{
	`{"name":"\\u0000"}`, // a backslash, then "u0000"
	`{"name":"\\\\u0000"}`,
	`{"name":"\ud83d\ude00 \u00e9 é 😀 \u0001 \uFFFD �"}`,
	`{"name":"\uD83D\uDE00"}`,
	`{"name":"\u0041\"\\\/\b\f\n\r\t"}`,
	`{"attrs":{"\u00e9":"\ud7ff\ue000"}}`,
	`{"raw":{"deep":[1,{"x":"\\ud800"}]}}`,
}

// TestDecodeRefusesBadText: NUL, invalid UTF-8 and unpaired surrogates are refused in any
// string, member names too, naming the string's path; storable text, escaped or not, decodes.
func TestDecodeRefusesBadText(t *testing.T) {
	for _, c := range textRefused {
		var v textTarget
		err := httpx.DecodeBytes([]byte(c.body), &v)
		fieldErr(t, c.body, err, c.field)
	}
	for _, body := range textAccepted {
		var v textTarget
		if err := httpx.DecodeBytes([]byte(body), &v); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
	// A string decoded into a type of its own (a time, a UUID) is named as well.
	var v struct {
		At json.Number `json:"at"`
	}
	fieldErr(t, "json.Number", httpx.DecodeBytes([]byte(`{"at":"\u0000"}`), &v), "at")
}

func TestCheckStrings(t *testing.T) {
	for _, c := range textRefused {
		fieldErr(t, c.body, httpx.CheckStrings([]byte(c.body)), c.field)
	}
	for _, body := range textAccepted {
		if err := httpx.CheckStrings([]byte(body)); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
	for _, c := range []struct{ body, field string }{
		{`"\u0000"`, "body"},
		{`["a","\u0000"]`, "[1]"},
		{`[{"data":{"v":"\u0000"}}]`, "[0].data.v"},
	} {
		fieldErr(t, c.body, httpx.CheckStrings([]byte(c.body)), c.field)
	}
	// It checks strings only: malformed JSON is the decoder's to report.
	for _, body := range []string{``, `{`, `{"a":`, `{"a":"x`, `}}]]`, "\xff", `{"a" 1}`} {
		if err := httpx.CheckStrings([]byte(body)); err != nil {
			t.Errorf("%q: %v, want nil: not a string problem", body, err)
		}
	}
}

func TestCheckText(t *testing.T) {
	for _, s := range []string{"", "plain", "é 😀 \ufffd", "\x01"} {
		if err := httpx.CheckText("subject", s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"\x00", "a\x00", "\xff", "a\xed\xa0\x80"} {
		err := httpx.CheckText("subject", s)
		fieldErr(t, s, err, "subject")
		var e *errs.Error
		if errors.As(err, &e) && len(e.Fields) != 1 {
			t.Errorf("%q: %d field errors, want 1", s, len(e.Fields))
		}
	}
}

func TestCheckURL(t *testing.T) {
	r := chi.NewRouter()
	r.Use(httpx.CheckURL(r))
	r.Get("/things/{key}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	for _, c := range []struct{ target, field string }{
		{"/things/ok", ""},
		{"/things/%C3%A9?type=%C3%A9&q=a+b", ""},
		{"/things/a%00b", "key"},
		{"/things/%FF", "key"},
		{"/things/ok?type=a%00b", "type"},
		{"/things/ok?type=ok&type=%ED%A0%80", "type"},
		{"/things/ok?%00=1", "query"},
		{"/nowhere%00", "path"},
	} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("GET", c.target, nil))
		if c.field == "" {
			if w.Code != http.StatusNoContent {
				t.Errorf("%s: %d %s, want it served", c.target, w.Code, w.Body)
			}
			continue
		}
		var p httpx.Problem
		json.Unmarshal(w.Body.Bytes(), &p)
		if w.Code != http.StatusBadRequest || p.Code != "validation_failed" || len(p.Errors) != 1 || p.Errors[0].Field != c.field {
			t.Errorf("%s: %d %s, want 400 validation_failed naming %s", c.target, w.Code, w.Body, c.field)
		}
	}
}

// BenchmarkCheckStrings: the check runs on every JSON body, before decoding. A body of
// storable text takes the fast path (two passes, no parsing); one with surrogate-pair escapes,
// as ASCII-only encoders write emoji, is scanned.
func BenchmarkCheckStrings(b *testing.B) {
	for _, c := range []struct{ name, body string }{
		{"plain", `{"name":"Apollo programme","description":"to the moon and back, café included","tags":["a","b"]}`},
		{"escaped", `{"name":"Apollo programme","description":"to the moon and back \ud83d\ude80, caf\u00e9 included","tags":["a","b"]}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			body := []byte(c.body)
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := httpx.CheckStrings(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
