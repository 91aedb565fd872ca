package server_test

import (
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/server/servertest"
)

// FuzzOperations sends bodies built from openapi.yaml's request schemas, valid and mutated, to
// every JSON operation, as the tenant's owner or as the operator, and fails on any 500: bad
// input is the client's problem and must be answered as such. The fuzzer's bytes are the
// generator's choices (which operation, which fields, which values, which mutation), so that
// coverage guidance steers the choices rather than a random seed.
func FuzzOperations(f *testing.F) {
	s := servertest.New(f)
	spec, _ := servertest.Spec(f)
	ops := jsonOperations(spec)
	if len(ops) < 10 {
		f.Fatalf("found %d JSON operations in openapi.yaml: the walk is wrong", len(ops))
	}
	ten := s.Signup(f, "fuzz")
	project := s.Create(f, ten.Token, "/v1/projects", map[string]string{"name": "fuzzed"})
	operator := s.PlatformToken(f)

	for i := range ops {
		f.Add(uint8(i), []byte{})                        // the smallest valid body
		f.Add(uint8(i), []byte{1, 1, 1, 1, 1, 1, 1, 1})  // every optional field
		f.Add(uint8(i), []byte{2, 7, 3, 200, 5, 9, 250}) // mutated
	}
	f.Fuzz(func(t *testing.T, pick uint8, choices []byte) {
		op := ops[int(pick)%len(ops)]
		c := &chooser{b: choices}
		body := c.value(op.schema, 0)
		if c.n(4) == 0 {
			body = c.mutate(body)
		}
		raw, err := json.Marshal(body)
		if err != nil {
			t.Skip() // NaN and friends: not JSON, and not what a client can send
		}
		token := ten.Token
		if strings.HasPrefix(op.path, "/v1/admin/") {
			token = operator
		}
		path := op.path
		for _, p := range []struct{ name, value string }{
			{"{id}", c.pick(project, uuid.NewString(), "not-a-uuid")},
			{"{key}", c.pick("tokens", "a-flag", "Bad Key")},
			{"{code}", c.pick("free", "fuzz-plan", "BAD")},
			{"{tenant_id}", c.pick(ten.ID, uuid.NewString())},
			{"{delivery_id}", uuid.NewString()},
		} {
			path = strings.ReplaceAll(path, p.name, p.value)
		}
		res, err := s.TryDo(servertest.Request{
			Method: op.method, Path: path, Token: token, Body: raw,
			Header: map[string]string{"Idempotency-Key": uuid.NewString()},
		})
		if err != nil {
			t.Fatalf("%s %s: %v", op.method, path, err)
		}
		if res.Status >= 500 && res.Status != http.StatusServiceUnavailable {
			t.Fatalf("%s %s with %s: %d %s", op.method, path, raw, res.Status, res.Body)
		}
	})
}

// jsonOperation is an operation of openapi.yaml that takes a JSON body.
type jsonOperation struct {
	method, path string
	schema       *openapi3.Schema
}

func jsonOperations(spec *openapi3.T) []jsonOperation {
	var ops []jsonOperation
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			if op.RequestBody == nil || op.RequestBody.Value == nil {
				continue
			}
			for mt, content := range op.RequestBody.Value.Content {
				if strings.Contains(mt, "json") && content.Schema != nil && content.Schema.Value != nil {
					ops = append(ops, jsonOperation{method, path, content.Schema.Value})
					break
				}
			}
		}
	}
	// Map order is random; the fuzzer's operation index must mean the same operation each run.
	slices.SortFunc(ops, func(a, b jsonOperation) int { return strings.Compare(a.path+" "+a.method, b.path+" "+b.method) })
	return ops
}

// chooser turns the fuzzer's bytes into choices; past the last byte every choice is 0, the
// plainest (required fields only, the first enum value, the example).
type chooser struct{ b []byte }

func (c *chooser) n(max int) int {
	if len(c.b) == 0 || max <= 1 {
		return 0
	}
	v := int(c.b[0]) % max
	c.b = c.b[1:]
	return v
}

func (c *chooser) pick(vs ...string) string { return vs[c.n(len(vs))] }

// hostile are the strings a careless or malicious client sends.
var hostile = []string{"", " ", "nul\x00byte", strings.Repeat("x", 10_000), "\u202e", "💥", "' OR 1=1 --", "../../etc/passwd", "null", "Ω≈ç√"}

// value builds a value for schema s: valid at choice 0, more and more unusual beyond.
func (c *chooser) value(s *openapi3.Schema, depth int) any {
	if s == nil || depth > 6 {
		return nil
	}
	for _, group := range [][]*openapi3.SchemaRef{s.OneOf, s.AnyOf} {
		if len(group) > 0 {
			return c.value(group[c.n(len(group))].Value, depth+1)
		}
	}
	if len(s.AllOf) > 0 {
		merged := map[string]any{}
		for _, sub := range s.AllOf {
			if m, ok := c.value(sub.Value, depth+1).(map[string]any); ok {
				for k, v := range m {
					merged[k] = v
				}
			}
		}
		return merged
	}
	if len(s.Enum) > 0 {
		return s.Enum[c.n(len(s.Enum))]
	}
	switch {
	case s.Type.Is("object") || len(s.Properties) > 0:
		out := map[string]any{}
		for name, prop := range s.Properties {
			if slices.Contains(s.Required, name) || c.n(2) == 1 {
				out[name] = c.value(prop.Value, depth+1)
			}
		}
		return out
	case s.Type.Is("array"):
		n := c.n(4)
		out := make([]any, 0, n)
		for range n {
			if s.Items != nil {
				out = append(out, c.value(s.Items.Value, depth+1))
			}
		}
		return out
	case s.Type.Is("integer"):
		return []any{1, 0, -1, 100, math.MaxInt64, math.MinInt64, 1 << 53}[c.n(7)]
	case s.Type.Is("number"):
		return []any{1.5, 0, -1, 1e300, -1e-300, 0.1 + 0.2, 1e15}[c.n(7)]
	case s.Type.Is("boolean"):
		return c.n(2) == 1
	case s.Type.Is("string"):
		if s.Example != nil && c.n(2) == 0 {
			return s.Example
		}
		switch s.Format {
		case "uuid":
			return c.pick(uuid.NewString(), "not-a-uuid")
		case "date-time":
			return c.pick("2026-01-01T00:00:00Z", "2026-13-45T99:00:00Z", "yesterday")
		case "email":
			return c.pick("fuzz@example.com", "not-an-email")
		}
		return c.pick(append([]string{"fuzz"}, hostile...)...)
	}
	return nil
}

// mutate breaks a valid value the way clients do: a field of the wrong type, a field too
// many, a field missing, or something else than an object altogether.
func (c *chooser) mutate(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return map[string]any{"unexpected": v}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	switch c.n(5) {
	case 0:
		if len(keys) > 0 {
			m[keys[c.n(len(keys))]] = []any{"wrong", map[string]any{"type": 1}, nil, 1e30, true}[c.n(5)]
		}
	case 1:
		m["unknown_"+c.pick("field", "tenant_id", "__proto__")] = "x"
	case 2:
		if len(keys) > 0 {
			delete(m, keys[c.n(len(keys))])
		}
	case 3:
		return []any{m}
	case 4:
		return "a string where an object belongs"
	}
	return m
}
