package flags

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/errs"
)

// Limits on a definition: generous for people, bounded for the snapshot every replica holds.
const (
	maxVariants    = 100
	maxRules       = 100
	maxConditions  = 32
	maxValues      = 1000
	maxDescription = 1000
)

var (
	keyPattern       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	variantPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	saltPattern      = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`) // no ':': see Bucket
	attributePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,127}$`)
)

// validKey reports whether key can name a flag.
func validKey(key string) bool { return keyPattern.MatchString(key) }

// flag is a definition compiled for evaluation: variants by index, condition values parsed
// once, split ranges cumulated. It is immutable once in a snapshot.
type flag struct {
	key       string
	typ       Type
	enabled   bool
	salt      string
	variants  []variant // by name
	def       int       // index of the default variant
	rules     []rule
	overrides overrides // tenant → variant index
}

type variant struct {
	name  string
	value any // bool, string, float64 or map[string]any; shared, never modified
}

type rule struct {
	conds   []cond
	variant int     // the variant served, or -1 for a split
	split   []share // cumulative, in share order
}

// share serves variant to the buckets below upTo that the shares before it left.
type share struct {
	upTo    uint32
	variant int
}

// attr says where a condition's attribute comes from.
type attr uint8

const (
	attrContext attr = iota // the caller's context
	attrTenantID
	attrPlan
	attrTenantCreatedAt
)

// cond is a condition with its values parsed for its attribute and operator.
type cond struct {
	attr  attr
	name  string // the context attribute's name
	op    Operator
	strs  []string
	nums  []float64
	bools []bool
	ids   []uuid.UUID
	at    time.Time
}

func (f *flag) variantIndex(name string) int {
	i, ok := slices.BinarySearchFunc(f.variants, name, func(v variant, name string) int {
		return strings.Compare(v.name, name)
	})
	if !ok {
		return -1
	}
	return i
}

// compileFlag checks a definition and builds its evaluable form. Every problem is reported
// against the field that causes it. The operator's PUT and the snapshot load both compile,
// so what is accepted and what is evaluated can never drift apart.
func compileFlag(key string, d Definition) (*flag, errs.Fields) {
	var fe errs.Fields
	f := &flag{key: key, typ: d.Type, enabled: d.Enabled, salt: d.Salt}

	if !validKey(key) {
		fe.Add("key", "must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if utf8.RuneCountInString(d.Description) > maxDescription {
		fe.Add("description", fmt.Sprintf("must be at most %d characters", maxDescription))
	}
	if !saltPattern.MatchString(d.Salt) {
		fe.Add("salt", "must be 1 to 128 letters, digits, '.', '_' or '-'")
	}
	switch d.Type {
	case TypeBoolean, TypeString, TypeNumber, TypeObject:
	default:
		fe.Add("type", "must be one of boolean, string, number, object")
	}

	switch {
	case len(d.Variants) == 0:
		fe.Add("variants", "at least one variant is required")
	case len(d.Variants) > maxVariants:
		fe.Add("variants", fmt.Sprintf("at most %d variants", maxVariants))
	}
	names := make([]string, 0, len(d.Variants))
	for name := range d.Variants {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		field := "variants." + name
		if !variantPattern.MatchString(name) {
			fe.Add(field, "a variant name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
			continue
		}
		v, err := variantValue(d.Variants[name], d.Type)
		if err != "" {
			fe.Add(field, err)
			continue
		}
		f.variants = append(f.variants, variant{name: name, value: v})
	}

	f.def = f.variantIndex(d.DefaultVariant)
	switch {
	case d.DefaultVariant == "":
		fe.Add("default_variant", "is required")
	case f.def < 0 && d.Variants[d.DefaultVariant] == nil:
		fe.Add("default_variant", fmt.Sprintf("unknown variant %q", d.DefaultVariant))
	}

	if len(d.Rules) > maxRules {
		fe.Add("rules", fmt.Sprintf("at most %d rules", maxRules))
	}
	for i, r := range d.Rules {
		f.rules = append(f.rules, compileRule(f, d.Variants, fmt.Sprintf("rules[%d]", i), r, &fe))
	}
	if len(fe) > 0 {
		return nil, fe
	}
	return f, nil
}

// variantValue decodes a variant's value and checks it has the flag's type.
func variantValue(raw json.RawMessage, typ Type) (any, string) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, "must be a JSON value"
	}
	ok := false
	switch v.(type) {
	case bool:
		ok = typ == TypeBoolean
	case string:
		ok = typ == TypeString
	case float64:
		ok = typ == TypeNumber
	case map[string]any:
		ok = typ == TypeObject
	}
	if !ok {
		switch typ {
		case TypeBoolean, TypeString, TypeNumber, TypeObject:
			return nil, fmt.Sprintf("must be %s, as the flag's type is %s", article(typ), typ)
		}
		return nil, "the flag's type is unknown"
	}
	return v, ""
}

func article(t Type) string {
	if t == TypeObject {
		return "an object"
	}
	return "a " + string(t)
}

func compileRule(f *flag, variants map[string]json.RawMessage, field string, r Rule, fe *errs.Fields) rule {
	out := rule{variant: -1}
	if len(r.Conditions) > maxConditions {
		fe.Add(field+".conditions", fmt.Sprintf("at most %d conditions", maxConditions))
	}
	for j, c := range r.Conditions {
		out.conds = append(out.conds, compileCond(fmt.Sprintf("%s.conditions[%d]", field, j), c, fe))
	}
	// A variant that exists but failed its own check is reported there, not again here.
	known := func(name string) bool { _, ok := variants[name]; return ok }
	switch {
	case (r.Variant == "") == (len(r.Split) == 0):
		fe.Add(field, "needs either a variant or a split")
	case r.Variant != "":
		if !known(r.Variant) {
			fe.Add(field+".variant", fmt.Sprintf("unknown variant %q", r.Variant))
		}
		out.variant = f.variantIndex(r.Variant)
	default:
		out.split = compileSplit(f, known, field+".split", r.Split, fe)
	}
	return out
}

func compileSplit(f *flag, known func(string) bool, field string, shares []Share, fe *errs.Fields) []share {
	var out []share
	seen := make(map[string]bool, len(shares))
	sum := 0
	for k, s := range shares {
		sf := fmt.Sprintf("%s[%d]", field, k)
		switch {
		case !known(s.Variant):
			fe.Add(sf+".variant", fmt.Sprintf("unknown variant %q", s.Variant))
		case seen[s.Variant]:
			fe.Add(sf+".variant", fmt.Sprintf("variant %q appears twice in the split", s.Variant))
		}
		seen[s.Variant] = true
		if s.Weight < 0 || s.Weight > 100 {
			fe.Add(sf+".weight", "must be a whole percent from 0 to 100")
			continue
		}
		sum += s.Weight
		out = append(out, share{upTo: uint32(sum * Buckets / 100), variant: f.variantIndex(s.Variant)})
	}
	if sum != 100 {
		fe.Add(field, fmt.Sprintf("weights must sum to 100, not %d", sum))
	}
	return out
}

// operand kinds a condition's values may have, by attribute and operator.
const (
	kindScalar = iota // string, number or boolean
	kindString
	kindNumber
	kindTime
	kindUUID
)

func compileCond(field string, c Condition, fe *errs.Fields) cond {
	out := cond{op: c.Operator, name: c.Attribute}
	switch c.Attribute {
	case AttrTenantID:
		out.attr = attrTenantID
	case AttrPlan:
		out.attr = attrPlan
	case AttrTenantCreatedAt:
		out.attr = attrTenantCreatedAt
	default:
		if !attributePattern.MatchString(c.Attribute) {
			fe.Add(field+".attribute", "must be 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or '_'")
			return out
		}
	}

	single, kind := false, kindScalar
	switch c.Operator {
	case OpIn, OpNotIn, OpEq, OpNeq:
	case OpStartsWith, OpEndsWith, OpContains:
		kind = kindString
	case OpGt, OpGte, OpLt, OpLte:
		single, kind = true, kindNumber
	case OpBefore, OpAfter:
		single, kind = true, kindTime
	default:
		fe.Add(field+".operator", "must be one of in, not_in, eq, neq, gt, gte, lt, lte, starts_with, ends_with, contains, before, after")
		return out
	}
	// The server's attributes have one type each, so only some operators make sense on them.
	switch out.attr {
	case attrTenantID:
		if kind != kindScalar {
			fe.Add(field+".operator", "tenant_id takes in, not_in, eq or neq")
			return out
		}
		kind = kindUUID
	case attrPlan:
		if kind != kindScalar && kind != kindString {
			fe.Add(field+".operator", "plan takes in, not_in, eq, neq, starts_with, ends_with or contains")
			return out
		}
		kind = kindString
	case attrTenantCreatedAt:
		if kind != kindTime {
			fe.Add(field+".operator", "tenant_created_at takes before or after")
			return out
		}
	}

	vf := field + ".values"
	switch {
	case single && len(c.Values) != 1:
		fe.Add(vf, fmt.Sprintf("%s takes exactly one value", c.Operator))
		return out
	case len(c.Values) == 0:
		fe.Add(vf, fmt.Sprintf("%s takes at least one value", c.Operator))
		return out
	case len(c.Values) > maxValues:
		fe.Add(vf, fmt.Sprintf("at most %d values", maxValues))
		return out
	}
	for k, v := range c.Values {
		if msg := out.addValue(kind, v); msg != "" {
			fe.Add(fmt.Sprintf("%s[%d]", vf, k), msg)
		}
	}
	return out
}

// addValue parses one value as kind and files it with the condition's operands.
func (c *cond) addValue(kind int, v any) string {
	switch kind {
	case kindUUID:
		s, ok := v.(string)
		id, err := uuid.Parse(s)
		if !ok || err != nil || len(s) != 36 {
			return "must be a tenant id (a UUID)"
		}
		c.ids = append(c.ids, id)
	case kindString:
		s, ok := v.(string)
		if !ok {
			return "must be a string"
		}
		c.strs = append(c.strs, s)
	case kindNumber:
		n, ok := v.(float64)
		if !ok || math.IsNaN(n) {
			return "must be a number"
		}
		c.nums = append(c.nums, n)
	case kindTime:
		s, _ := v.(string)
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return "must be an RFC 3339 time such as 2024-01-31T00:00:00Z"
		}
		c.at = t
	default:
		switch x := v.(type) {
		case string:
			c.strs = append(c.strs, x)
		case float64:
			c.nums = append(c.nums, x)
		case bool:
			c.bools = append(c.bools, x)
		default:
			return "must be a string, a number or a boolean"
		}
	}
	return ""
}
