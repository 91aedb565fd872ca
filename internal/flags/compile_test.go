package flags

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// Every invalid definition is refused with the field that causes it.
func TestCompileNamesTheBadField(t *testing.T) {
	valid := func() Definition { return boolFlag("f").Definition }
	tests := []struct {
		name   string
		key    string
		change func(d *Definition)
		field  string
		says   string
	}{
		{"bad key", "no spaces", func(*Definition) {}, "key", "letters"},
		{"unknown type", "f", func(d *Definition) { d.Type = "date" }, "type", "one of"},
		{"no variants", "f", func(d *Definition) { d.Variants = nil }, "variants", "at least one"},
		{"value of the wrong type", "f", func(d *Definition) { d.Variants["on"] = raw(`"yes"`) }, "variants.on", "must be a boolean"},
		{"null value", "f", func(d *Definition) { d.Variants["on"] = raw(`null`) }, "variants.on", "must be a boolean"},
		{"bad variant name", "f", func(d *Definition) { d.Variants["a b"] = raw(`true`) }, "variants.a b", "variant name"},
		{"unknown default", "f", func(d *Definition) { d.DefaultVariant = "maybe" }, "default_variant", `unknown variant "maybe"`},
		{"no default", "f", func(d *Definition) { d.DefaultVariant = "" }, "default_variant", "required"},
		{"salt with a colon", "f", func(d *Definition) { d.Salt = "a:b" }, "salt", "letters"},
		{"rule with neither", "f", func(d *Definition) { d.Rules = []Rule{{}} }, "rules[0]", "either a variant or a split"},
		{"rule with both", "f", func(d *Definition) {
			d.Rules = []Rule{{Variant: "on", Split: []Share{{"on", 100}}}}
		}, "rules[0]", "either a variant or a split"},
		{"rule with an unknown variant", "f", func(d *Definition) { d.Rules = []Rule{{Variant: "maybe"}} }, "rules[0].variant", `unknown variant "maybe"`},
		{"split not summing to 100", "f", func(d *Definition) {
			d.Rules = []Rule{{Split: []Share{{"on", 30}, {"off", 60}}}}
		}, "rules[0].split", "sum to 100, not 90"},
		{"split with an unknown variant", "f", func(d *Definition) {
			d.Rules = []Rule{{Split: []Share{{"on", 30}, {"maybe", 70}}}}
		}, "rules[0].split[1].variant", `unknown variant "maybe"`},
		{"split naming a variant twice", "f", func(d *Definition) {
			d.Rules = []Rule{{Split: []Share{{"on", 30}, {"on", 70}}}}
		}, "rules[0].split[1].variant", "twice"},
		{"negative weight", "f", func(d *Definition) {
			d.Rules = []Rule{{Split: []Share{{"on", -10}, {"off", 110}}}}
		}, "rules[0].split[0].weight", "0 to 100"},
		{"unknown operator", "f", func(d *Definition) {
			d.Rules = []Rule{{Conditions: []Condition{{"plan", "like", []any{"x"}}}, Variant: "on"}}
		}, "rules[0].conditions[0].operator", "one of"},
		{"operator that does not apply to plan", "f", func(d *Definition) {
			d.Rules = []Rule{{Conditions: []Condition{{"plan", OpGt, []any{1.0}}}, Variant: "on"}}
		}, "rules[0].conditions[0].operator", "plan takes"},
		{"gt with two values", "f", func(d *Definition) {
			d.Rules = []Rule{{Conditions: []Condition{{"seats", OpGt, []any{1.0, 2.0}}}, Variant: "on"}}
		}, "rules[0].conditions[0].values", "exactly one value"},
		{"in without values", "f", func(d *Definition) {
			d.Rules = []Rule{{Conditions: []Condition{{"country", OpIn, []any{}}}, Variant: "on"}}
		}, "rules[0].conditions[0].values", "at least one value"},
		{"gt on a string", "f", func(d *Definition) {
			d.Rules = []Rule{{Conditions: []Condition{{"seats", OpGt, []any{"10"}}}, Variant: "on"}}
		}, "rules[0].conditions[0].values[0]", "a number"},
		{"a bad time", "f", func(d *Definition) {
			d.Rules = []Rule{{Conditions: []Condition{{AttrTenantCreatedAt, OpBefore, []any{"yesterday"}}}, Variant: "on"}}
		}, "rules[0].conditions[0].values[0]", "RFC 3339"},
		{"a tenant id that is not a UUID", "f", func(d *Definition) {
			d.Rules = []Rule{{Conditions: []Condition{{AttrTenantID, OpIn, []any{"acme"}}}, Variant: "on"}}
		}, "rules[0].conditions[0].values[0]", "UUID"},
		{"an object among values", "f", func(d *Definition) {
			d.Rules = []Rule{{Conditions: []Condition{{"x", OpIn, []any{map[string]any{}}}}, Variant: "on"}}
		}, "rules[0].conditions[0].values[0]", "string, a number or a boolean"},
		{"a bad attribute name", "f", func(d *Definition) {
			d.Rules = []Rule{{Conditions: []Condition{{"", OpIn, []any{"x"}}}, Variant: "on"}}
		}, "rules[0].conditions[0].attribute", "letters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := valid()
			d.Variants = map[string]json.RawMessage{"on": raw("true"), "off": raw("false")}
			tt.change(&d)
			f, fe := compileFlag(tt.key, d)
			if f != nil {
				t.Fatal("compiled an invalid flag")
			}
			for _, e := range fe {
				if e.Field == tt.field && strings.Contains(e.Message, tt.says) {
					return
				}
			}
			t.Errorf("errors %+v; want %s: ...%s...", fe, tt.field, tt.says)
		})
	}
}

func TestCompileAcceptsAFullDefinition(t *testing.T) {
	d := Definition{
		Type:           TypeObject,
		Variants:       map[string]json.RawMessage{"small": raw(`{"rows": 10}`), "large": raw(`{"rows": 1000}`)},
		DefaultVariant: "small",
		Enabled:        true,
		Salt:           "tables_v2",
		Rules: []Rule{
			{Conditions: []Condition{
				{AttrTenantID, OpIn, []any{uuid.NewString()}},
				{AttrPlan, OpNotIn, []any{"free"}},
				{AttrTenantCreatedAt, OpAfter, []any{"2024-01-01T00:00:00Z"}},
				{"seats", OpGte, []any{5.0}},
				{"email", OpEndsWith, []any{"@acme.com", "@acme.org"}},
				{"beta", OpEq, []any{true}},
			}, Variant: "large"},
			{Conditions: []Condition{}, Split: []Share{{"large", 0}, {"small", 100}}},
		},
	}
	if _, fe := compileFlag("tables.v2", d); fe != nil {
		t.Fatalf("refused: %+v", fe)
	}
}

// A split's shares are contiguous bucket ranges in share order: the first share starts at
// bucket 0, so raising it only extends its range.
func TestSplitRangesAreCumulative(t *testing.T) {
	f, fe := compileFlag("f", boolFlag("f", Rule{Conditions: []Condition{}, Split: []Share{{"on", 30}, {"off", 70}}}).Definition)
	if fe != nil {
		t.Fatal(fe)
	}
	r := f.rules[0]
	on, off := f.variantIndex("on"), f.variantIndex("off")
	for _, tt := range []struct {
		bucket uint32
		want   int
	}{{0, on}, {2999, on}, {3000, off}, {9999, off}} {
		if got := r.pick(tt.bucket); got != tt.want {
			t.Errorf("bucket %d → variant %d, want %d", tt.bucket, got, tt.want)
		}
	}
}

func TestNewSnapshotLeavesOutWhatDoesNotCompile(t *testing.T) {
	bad := boolFlag("bad")
	bad.DefaultVariant = "gone"
	s, err := NewSnapshot(3, []Flag{boolFlag("good"), bad}, []Override{
		{FlagKey: "good", TenantID: tenantA, Variant: "on"},
		{FlagKey: "good", TenantID: tenantB, Variant: "gone"},
		{FlagKey: "missing", TenantID: tenantA, Variant: "on"},
	})
	if err == nil || !strings.Contains(err.Error(), `flag "bad" left out`) || strings.Count(err.Error(), "override") != 2 {
		t.Errorf("error %v, want the bad flag and the two bad overrides named", err)
	}
	if s.Version() != 3 || s.Len() != 1 {
		t.Fatalf("version %d with %d flags, want 3 with 1", s.Version(), s.Len())
	}
	if got := s.Evaluate("good", TypeAny, tenantTarget(tenantA)); got.Variant != "on" || got.Reason != ReasonTargetingMatch {
		t.Errorf("the good override was lost: %+v", got)
	}
}

func TestSameDefinitionIgnoresSpelling(t *testing.T) {
	a := boolFlag("f").Definition
	b := boolFlag("f").Definition
	a.Variants = map[string]json.RawMessage{"on": raw(`{"b": 1, "a": 2.0}`), "off": raw(`false`)}
	b.Variants = map[string]json.RawMessage{"on": raw(`{"a":2,"b":1}`), "off": raw(` false `)}
	if !sameDefinition(a, b) {
		t.Error("the same definition spelled differently compares unequal")
	}
	b.Enabled = false
	if sameDefinition(a, b) {
		t.Error("different definitions compare equal")
	}
}
