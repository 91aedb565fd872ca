package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// textBad are strings PostgreSQL cannot store as text or jsonb, as they appear in a JSON
// body: NUL, bytes that are not UTF-8, and a surrogate escape without its pair.
var textBad = []struct{ name, json string }{
	{"NUL", `"a\u0000b"`},
	{"invalid UTF-8", "\"a\xffb\""},
	{"unpaired surrogate", `"a\ud800b"`},
}

// textNotOurs are bodies that no check of ours reads: Stripe's payload, verified by its
// signature first. (Usage events are parsed by metering's CloudEvents parser, which checks
// each event with httpx.CheckStrings.)
var textNotOurs = []string{"POST /v1/webhooks/stripe"}

// textSeg is one step of a JSON path: a member name, or the first element of an array.
type textSeg struct {
	name  string
	index bool
}

func textPath(segs []textSeg) string {
	var b strings.Builder
	for i, s := range segs {
		switch {
		case s.index:
			b.WriteString("[0]")
		case i > 0:
			b.WriteString("." + s.name)
		default:
			b.WriteString(s.name)
		}
	}
	return b.String()
}

// textStrings lists the paths of every string a request body of schema may hold.
func textStrings(s *openapi3.Schema, at []textSeg, seen map[string][]textSeg) {
	if s == nil || len(at) > 8 {
		return
	}
	if s.Type.Includes("string") && len(at) > 0 {
		seen[textPath(at)] = at
	}
	for _, branches := range [][]*openapi3.SchemaRef{s.AllOf, s.OneOf, s.AnyOf} {
		for _, b := range branches {
			textStrings(b.Value, at, seen)
		}
	}
	for name, p := range s.Properties {
		textStrings(p.Value, append(slices.Clip(at), textSeg{name: name}), seen)
	}
	if s.Items != nil {
		textStrings(s.Items.Value, append(slices.Clip(at), textSeg{index: true}), seen)
	}
	if ap := s.AdditionalProperties.Schema; ap != nil {
		textStrings(ap.Value, append(slices.Clip(at), textSeg{name: "x"}), seen)
	}
}

// textBody is a JSON body that holds value (raw JSON) at path and nothing else.
func textBody(t *testing.T, path []textSeg, value string) []byte {
	const marker = "\x01marker\x01"
	var v any = marker
	for i := len(path) - 1; i >= 0; i-- {
		if path[i].index {
			v = []any{v}
		} else {
			v = map[string]any{path[i].name: v}
		}
	}
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	quoted, _ := json.Marshal(marker)
	return bytes.Replace(raw, quoted, []byte(value), 1)
}

// TestBodyTextRefused: NUL, invalid UTF-8 or an unpaired surrogate in any string of any JSON
// body that openapi.yaml describes is a 400 naming the string's path, never a 500 from
// PostgreSQL. OFREP says it in its own shape, naming the path in errorDetails.
func TestBodyTextRefused(t *testing.T) {
	s := servertest.New(t, withStripe, func(c *config.Config) { c.AuthRatePerMinute = 1_000_000 })
	spec, _ := servertest.Spec(t)
	ten := s.Signup(t, "text")
	operator := s.PlatformToken(t)
	params := strings.NewReplacer("{id}", uuid.NewString(), "{tenant_id}", ten.ID, "{key}", "text-probe", "{code}", "text-probe")

	covered := map[string]bool{}
	for _, path := range spec.Paths.InMatchingOrder() {
		for method, op := range spec.Paths.Value(path).Operations() {
			route := method + " " + path
			if op.RequestBody == nil || slices.Contains(textNotOurs, route) {
				continue
			}
			media := op.RequestBody.Value.Content.Get("application/json")
			if media == nil {
				continue
			}
			strs := map[string][]textSeg{}
			textStrings(media.Schema.Value, nil, strs)
			token := ten.Token
			switch op.Extensions["x-required-role"] {
			case "anyone":
				token = ""
			case "platform_admin":
				token = operator
			}
			for field, at := range strs {
				for _, bad := range textBad {
					res := s.Do(t, servertest.Request{
						Method: method, Path: params.Replace(path), Token: token, Body: textBody(t, at, bad.json),
						Header: map[string]string{"Idempotency-Key": uuid.NewString()},
					})
					what := route + " with " + bad.name + " in " + field
					if res.Status != http.StatusBadRequest {
						t.Errorf("%s: %d %s, want 400", what, res.Status, res.Body)
						continue
					}
					if strings.HasPrefix(path, "/ofrep/") {
						var f struct{ ErrorCode, ErrorDetails string }
						res.Decode(t, &f)
						if !strings.Contains(f.ErrorDetails, field) {
							t.Errorf("%s: errorDetails %q do not name %s", what, f.ErrorDetails, field)
						}
						continue
					}
					if p := res.Problem(t); p.Code != "validation_failed" || !p.Field(field) && !p.FieldAt(field) {
						t.Errorf("%s: %s, want validation_failed naming %s", what, res.Body, field)
					}
				}
				covered[route] = true
			}
		}
	}
	for _, want := range []string{"POST /v1/signup", "POST /v1/auth/token", "POST /v1/projects", "PATCH /v1/projects/{id}", "PUT /v1/admin/flags/{key}", "POST /ofrep/v1/evaluate/flags"} {
		if !covered[want] {
			t.Errorf("%s was not probed: its body has no string in openapi.yaml?", want)
		}
	}
	t.Logf("probed %d operations", len(covered))
}

// TestURLTextRefused: NUL or invalid UTF-8 in a path or query parameter never reaches
// PostgreSQL: under /v1 it is a 400 naming the parameter; OFREP's flag keys, evaluated in
// memory, are simply not found.
func TestURLTextRefused(t *testing.T) {
	s := servertest.New(t, withStripe)
	spec, _ := servertest.Spec(t)
	ten := s.Signup(t, "urltext")
	operator := s.PlatformToken(t)
	valid := map[string]string{"id": uuid.NewString(), "delivery_id": uuid.NewString(), "tenant_id": ten.ID, "key": "text-probe", "code": "text-probe"}
	badValues := []string{"a%00b", "a%FFb"}

	check := func(method, path, param string) {
		t.Helper()
		token := ten.Token
		if strings.HasPrefix(path, "/v1/admin/") {
			token = operator
		}
		res := s.Do(t, servertest.Request{Method: method, Path: path, Token: token, Header: map[string]string{"Idempotency-Key": uuid.NewString()}})
		what := method + " " + path
		switch {
		case res.Status >= 500:
			t.Errorf("%s: %d %s", what, res.Status, res.Body)
		case !strings.HasPrefix(path, "/v1/"):
		case res.Status != http.StatusBadRequest:
			t.Errorf("%s: %d %s, want 400 naming %s", what, res.Status, res.Body, param)
		default:
			if p := res.Problem(t); p.Code != "validation_failed" || !p.Field(param) {
				t.Errorf("%s: %s, want validation_failed naming %s", what, res.Body, param)
			}
		}
	}

	n := 0
	for _, path := range spec.Paths.InMatchingOrder() {
		item := spec.Paths.Value(path)
		for method, op := range item.Operations() {
			var names []string
			for _, p := range slices.Concat(item.Parameters, op.Parameters) {
				if p.Value.In == "path" || p.Value.In == "query" {
					names = append(names, p.Value.In+":"+p.Value.Name)
				}
			}
			for _, name := range names {
				in, param, _ := strings.Cut(name, ":")
				for _, bad := range badValues {
					filled := path
					for k, v := range valid {
						if k == param && in == "path" {
							v = bad
						}
						filled = strings.ReplaceAll(filled, "{"+k+"}", v)
					}
					if in == "query" {
						filled += "?" + param + "=" + bad
					}
					check(method, filled, param)
					n++
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("openapi.yaml has no path or query parameters")
	}
	// An unknown parameter gets the same answer as a known one: it is refused, not read.
	check("GET", "/v1/projects?sort=a%00b", "sort")
}
