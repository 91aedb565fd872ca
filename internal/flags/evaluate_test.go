package flags

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
)

var (
	tenantA = uuid.MustParse("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
	tenantB = uuid.MustParse("0190a1b2-c3d4-7e5f-8a9b-000000000002")
)

func planIs(plans ...any) Condition {
	return Condition{Attribute: AttrPlan, Operator: OpIn, Values: plans}
}

// The order of evaluation: missing, disabled, override, rules, default.
func TestEvaluationOrder(t *testing.T) {
	full := boolFlag("full",
		Rule{Conditions: []Condition{planIs("pro")}, Variant: "on"},
		Rule{Conditions: []Condition{planIs("team")}, Split: []Share{{"on", 100}, {"off", 0}}},
	)
	disabled := boolFlag("disabled", Rule{Conditions: []Condition{}, Variant: "on"})
	disabled.Enabled = false
	static := boolFlag("static")
	static.DefaultVariant = "on"
	s := mustSnapshot(t, 1, []Flag{full, disabled, static},
		Override{FlagKey: "full", TenantID: tenantA, Variant: "on"},
		Override{FlagKey: "disabled", TenantID: tenantA, Variant: "on"},
	)

	tests := []struct {
		name    string
		key     string
		target  Target
		variant string
		reason  Reason
		code    ErrorCode
	}{
		{"missing flag", "nope", tenantTarget(tenantA), "", ReasonError, CodeFlagNotFound},
		{"disabled beats override and rules", "disabled", tenantTarget(tenantA), "off", ReasonDisabled, ""},
		{"override beats rules", "full", Target{Tenant: Tenant{ID: tenantA, Plan: "free"}}, "on", ReasonTargetingMatch, ""},
		{"rule variant", "full", Target{Tenant: Tenant{ID: tenantB, Plan: "pro"}}, "on", ReasonTargetingMatch, ""},
		{"rule split", "full", Target{Tenant: Tenant{ID: tenantB, Plan: "team"}}, "on", ReasonSplit, ""},
		{"no rule holds", "full", Target{Tenant: Tenant{ID: tenantB, Plan: "free"}}, "off", ReasonDefault, ""},
		{"no rules at all", "static", tenantTarget(tenantB), "on", ReasonStatic, ""},
		{"split without tenant or key", "full", Target{Tenant: Tenant{Plan: "team"}}, "", ReasonError, CodeTargetingKeyMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := s.Evaluate(tt.key, TypeAny, tt.target)
			if got.Variant != tt.variant || got.Reason != tt.reason || got.ErrorCode != tt.code || got.Key != tt.key {
				t.Errorf("got %+v, want variant %q reason %s code %q", got, tt.variant, tt.reason, tt.code)
			}
			if tt.reason == ReasonError && got.Value != nil {
				t.Errorf("an error carries value %v", got.Value)
			}
			if tt.reason != ReasonError && got.Value != (tt.variant == "on") {
				t.Errorf("value %v does not match variant %s", got.Value, tt.variant)
			}
		})
	}
	var empty *Snapshot
	if got := empty.Evaluate("any", TypeAny, Target{}); got.ErrorCode != CodeFlagNotFound {
		t.Errorf("the empty snapshot answered %+v", got)
	}
}

func TestTheFirstRuleThatHoldsWins(t *testing.T) {
	f := boolFlag("f",
		Rule{Conditions: []Condition{planIs("pro")}, Variant: "off"},
		Rule{Conditions: []Condition{}, Variant: "on"},
	)
	s := mustSnapshot(t, 1, []Flag{f})
	if got := s.Evaluate("f", TypeAny, Target{Tenant: Tenant{ID: tenantA, Plan: "pro"}}); got.Variant != "off" {
		t.Errorf("pro got %s, want off from the first rule", got.Variant)
	}
	if got := s.Evaluate("f", TypeAny, Target{Tenant: Tenant{ID: tenantA, Plan: "free"}}); got.Variant != "on" {
		t.Errorf("free got %s, want on from the catch-all rule", got.Variant)
	}
}

func TestTypeMismatchAnswersTheDefault(t *testing.T) {
	s := mustSnapshot(t, 1, []Flag{boolFlag("b")})
	got := s.Evaluate("b", TypeString, tenantTarget(tenantA))
	if got.Reason != ReasonError || got.ErrorCode != CodeTypeMismatch || got.Value != nil {
		t.Errorf("got %+v, want TYPE_MISMATCH without a value", got)
	}
	c := &Client{}
	c.set(s)
	if got := c.String(t.Context(), "b", "fallback"); got != "fallback" {
		t.Errorf("String of a boolean flag = %q, want the caller's default", got)
	}
	if got := c.Number(t.Context(), "b", 7); got != 7 {
		t.Errorf("Number of a boolean flag = %v, want the caller's default", got)
	}
}

// tenant_id, plan and tenant_created_at come from the tenant record: a caller's context that
// names them changes nothing.
func TestServerAttributesCannotBeSpoofed(t *testing.T) {
	created := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	f := boolFlag("gated",
		Rule{Conditions: []Condition{planIs("enterprise")}, Variant: "on"},
		Rule{Conditions: []Condition{{Attribute: AttrTenantID, Operator: OpIn, Values: []any{tenantB.String()}}}, Variant: "on"},
		Rule{Conditions: []Condition{{Attribute: AttrTenantCreatedAt, Operator: OpBefore, Values: []any{"2020-01-01T00:00:00Z"}}}, Variant: "on"},
	)
	s := mustSnapshot(t, 1, []Flag{f})
	spoof := Target{
		Tenant: Tenant{ID: tenantA, Plan: "free", CreatedAt: created},
		Attributes: map[string]any{
			AttrPlan: "enterprise", AttrTenantID: tenantB.String(), AttrTenantCreatedAt: "2019-01-01T00:00:00Z",
		},
	}
	if got := s.Evaluate("gated", TypeAny, spoof); got.Variant != "off" {
		t.Errorf("a spoofed context got %s (%s), want off", got.Variant, got.Reason)
	}
}

// Each operator, on a context attribute, on a matching value, a value that does not match, a
// value of another type and a missing attribute.
func TestOperators(t *testing.T) {
	tests := []struct {
		op                  Operator
		values              []any
		match, miss, wrong  any
		missingAttributeHit bool
	}{
		{OpIn, []any{"fr", "de"}, "de", "us", 3.0, false},
		{OpNotIn, []any{"fr", "de"}, "us", "fr", 3.0, true},
		{OpEq, []any{42.0}, 42, 41.0, "42", false},
		{OpNeq, []any{true}, false, true, nil, true},
		{OpGt, []any{10.0}, 11.0, 10.0, "11", false},
		{OpGte, []any{10.0}, 10.0, 9.5, true, false},
		{OpLt, []any{10.0}, int64(9), 10.0, "9", false},
		{OpLte, []any{10.0}, 10.0, 10.5, false, false},
		{OpStartsWith, []any{"beta-", "alpha-"}, "alpha-7", "gamma-1", 5.0, false},
		{OpEndsWith, []any{"@acme.com"}, "ann@acme.com", "ann@acme.org", 5.0, false},
		{OpContains, []any{"ops"}, "devops-team", "dev", 5.0, false},
		{OpContains, []any{"beta"}, []any{"x", "beta"}, []any{"x"}, map[string]any{"beta": true}, false},
		{OpBefore, []any{"2024-06-01T00:00:00Z"}, "2024-05-31T23:59:59Z", "2024-06-01T00:00:00Z", 1.0, false},
		{OpAfter, []any{"2024-06-01T00:00:00Z"}, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), "2023-01-01T00:00:00Z", "not a time", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %v", tt.op, tt.values), func(t *testing.T) {
			f := boolFlag("f", Rule{Conditions: []Condition{{Attribute: "attr", Operator: tt.op, Values: tt.values}}, Variant: "on"})
			s := mustSnapshot(t, 1, []Flag{f})
			eval := func(attrs map[string]any) bool {
				return s.Evaluate("f", TypeAny, Target{Tenant: Tenant{ID: tenantA}, Attributes: attrs}).Variant == "on"
			}
			if !eval(map[string]any{"attr": tt.match}) {
				t.Errorf("%v does not match", tt.match)
			}
			if eval(map[string]any{"attr": tt.miss}) {
				t.Errorf("%v matches", tt.miss)
			}
			// A value of another type equals none of the values: only not_in and neq hold.
			if eval(map[string]any{"attr": tt.wrong}) != tt.missingAttributeHit {
				t.Errorf("a value of another type (%#v) matched = %v", tt.wrong, !tt.missingAttributeHit)
			}
			if eval(nil) != tt.missingAttributeHit {
				t.Errorf("a missing attribute matched = %v, want %v", !tt.missingAttributeHit, tt.missingAttributeHit)
			}
		})
	}
}

func TestServerAttributeOperators(t *testing.T) {
	created := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	tenant := Tenant{ID: tenantA, Plan: "pro-annual", CreatedAt: created}
	tests := []struct {
		cond Condition
		want bool
	}{
		{Condition{AttrTenantID, OpIn, []any{tenantB.String(), tenantA.String()}}, true},
		{Condition{AttrTenantID, OpNotIn, []any{tenantA.String()}}, false},
		{Condition{AttrTenantID, OpEq, []any{"0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B"}}, true}, // UUIDs compare as UUIDs
		{Condition{AttrPlan, OpStartsWith, []any{"pro"}}, true},
		{Condition{AttrPlan, OpNeq, []any{"pro-annual"}}, false},
		{Condition{AttrPlan, OpContains, []any{"annual"}}, true},
		{Condition{AttrTenantCreatedAt, OpAfter, []any{"2024-01-01T00:00:00Z"}}, true},
		{Condition{AttrTenantCreatedAt, OpBefore, []any{"2024-01-01T00:00:00+01:00"}}, false},
	}
	for _, tt := range tests {
		f := boolFlag("f", Rule{Conditions: []Condition{tt.cond}, Variant: "on"})
		s := mustSnapshot(t, 1, []Flag{f})
		if got := s.Evaluate("f", TypeAny, Target{Tenant: tenant}).Variant == "on"; got != tt.want {
			t.Errorf("%+v: matched %v, want %v", tt.cond, got, tt.want)
		}
	}
}

func TestAllConditionsOfARuleMustHold(t *testing.T) {
	f := boolFlag("f", Rule{Conditions: []Condition{
		planIs("pro"),
		{Attribute: "country", Operator: OpIn, Values: []any{"fr"}},
	}, Variant: "on"})
	s := mustSnapshot(t, 1, []Flag{f})
	pro := Tenant{ID: tenantA, Plan: "pro"}
	if s.Evaluate("f", TypeAny, Target{Tenant: pro, Attributes: map[string]any{"country": "de"}}).Variant == "on" {
		t.Error("one of two conditions was enough")
	}
	if s.Evaluate("f", TypeAny, Target{Tenant: pro, Attributes: map[string]any{"country": "fr"}}).Variant != "on" {
		t.Error("both conditions hold but the rule did not apply")
	}
}

func TestValuesOfEveryType(t *testing.T) {
	flags := []Flag{
		{Key: "s", Definition: Definition{Type: TypeString, Variants: map[string]json.RawMessage{"x": raw(`"hello"`)}, DefaultVariant: "x", Enabled: true, Salt: "s"}},
		{Key: "n", Definition: Definition{Type: TypeNumber, Variants: map[string]json.RawMessage{"x": raw(`2.5`)}, DefaultVariant: "x", Enabled: true, Salt: "n"}},
		{Key: "o", Definition: Definition{Type: TypeObject, Variants: map[string]json.RawMessage{"x": raw(`{"a":[1,2]}`)}, DefaultVariant: "x", Enabled: true, Salt: "o"}},
	}
	c := &Client{Tenant: func(context.Context) (Tenant, bool) { return Tenant{ID: tenantA}, true }}
	c.set(mustSnapshot(t, 1, flags))
	ctx := t.Context()
	if got := c.String(ctx, "s", ""); got != "hello" {
		t.Errorf("String = %q", got)
	}
	if got := c.Number(ctx, "n", 0); got != 2.5 {
		t.Errorf("Number = %v", got)
	}
	if got := c.Evaluate(ctx, "o").Value.(map[string]any)["a"].([]any)[1]; got != 2.0 {
		t.Errorf("object value = %v", got)
	}
	if got := c.Bool(ctx, "missing", true); !got {
		t.Error("Bool of a missing flag is not the caller's default")
	}
}

// FuzzEvaluate feeds arbitrary contexts, as OFREP would decode them, to a flag with every
// operator: evaluation must answer, never panic.
func FuzzEvaluate(f *testing.F) {
	f.Add([]byte(`{"a": "x", "n": 3, "t": "2024-01-01T00:00:00Z", "l": ["beta"]}`), "key")
	f.Add([]byte(`{"a": null, "n": "3", "t": 5, "l": {"x": 1}}`), "")
	f.Add([]byte(`{"a": [[]], "n": 1e308, "t": "", "l": [null, 1, true]}`), "k")
	var conds []Condition
	for _, c := range []struct {
		op     Operator
		values []any
	}{
		{OpIn, []any{"x", 1.0, true}}, {OpNotIn, []any{"y"}}, {OpEq, []any{"x"}}, {OpNeq, []any{2.0}},
		{OpGt, []any{1.0}}, {OpGte, []any{1.0}}, {OpLt, []any{1.0}}, {OpLte, []any{1.0}},
		{OpStartsWith, []any{"x"}}, {OpEndsWith, []any{"x"}}, {OpContains, []any{"beta"}},
		{OpBefore, []any{"2025-01-01T00:00:00Z"}}, {OpAfter, []any{"2020-01-01T00:00:00Z"}},
	} {
		for _, name := range []string{"a", "n", "t", "l"} {
			conds = append(conds, Condition{Attribute: name, Operator: c.op, Values: c.values})
		}
	}
	var rules []Rule
	for _, c := range conds {
		rules = append(rules, Rule{Conditions: []Condition{c}, Split: []Share{{"on", 50}, {"off", 50}}})
	}
	s := mustSnapshot(f, 1, []Flag{boolFlag("f", rules...)})
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		var attrs map[string]any
		if json.Unmarshal(body, &attrs) != nil {
			return
		}
		res := s.Evaluate("f", TypeAny, Target{Key: key, Attributes: attrs})
		if res.Reason == "" {
			t.Fatalf("no reason: %+v", res)
		}
	})
}
