// Package flags is the feature-flag module: flags stored in PostgreSQL (the source of truth),
// an immutable in-memory snapshot that every evaluation reads without a database or Redis
// call, a refresher that keeps each replica's snapshot current (Redis pub/sub, with a version
// poll behind it), the Go API the service's own code calls, the tenant endpoints, OFREP
// (so any OpenFeature SDK can evaluate flags), and the operators' endpoints with their audit
// trail. docs/flags.md tells the whole story.
package flags

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Type is a flag's value type: every variant of a flag has it.
type Type string

const (
	TypeBoolean Type = "boolean"
	TypeString  Type = "string"
	TypeNumber  Type = "number"
	TypeObject  Type = "object"

	// TypeAny asks Evaluate for a flag whatever its type (the HTTP endpoints do).
	TypeAny Type = ""
)

// Operator compares a condition's attribute with its values.
type Operator string

const (
	OpIn         Operator = "in"          // equals one of the values
	OpNotIn      Operator = "not_in"      // equals none of the values
	OpEq         Operator = "eq"          // as in, for the usual one value
	OpNeq        Operator = "neq"         // as not_in
	OpGt         Operator = "gt"          // numbers, one value
	OpGte        Operator = "gte"         //
	OpLt         Operator = "lt"          //
	OpLte        Operator = "lte"         //
	OpStartsWith Operator = "starts_with" // strings: has one of the values as prefix
	OpEndsWith   Operator = "ends_with"   // strings: has one of the values as suffix
	OpContains   Operator = "contains"    // strings: substring; arrays: holds one of the values
	OpBefore     Operator = "before"      // times (RFC 3339), one value
	OpAfter      Operator = "after"       //
)

// The attributes the server supplies. A caller's context can never set them: they are read
// from the tenant record, so a plan-gated feature cannot be spoofed.
const (
	AttrTenantID        = "tenant_id"
	AttrPlan            = "plan"
	AttrTenantCreatedAt = "tenant_created_at"
)

// Definition is a flag as an operator writes it.
type Definition struct {
	Description    string                     `json:"description"`
	Type           Type                       `json:"type"`
	Variants       map[string]json.RawMessage `json:"variants"`
	DefaultVariant string                     `json:"default_variant"`
	Enabled        bool                       `json:"enabled"` // false is the kill switch
	Rules          []Rule                     `json:"rules"`
	Salt           string                     `json:"salt"` // seeds the split buckets
}

// Rule serves Variant, or splits between variants, to targets that meet every condition.
// Rules are tried in order and the first that holds wins; no conditions means always.
type Rule struct {
	Conditions []Condition `json:"conditions"`
	Variant    string      `json:"variant,omitempty"`
	Split      []Share     `json:"split,omitempty"`
}

// Condition holds when Attribute compares with Values as Operator says. gt, gte, lt, lte,
// before and after take one value, the others a list.
type Condition struct {
	Attribute string   `json:"attribute"`
	Operator  Operator `json:"operator"`
	Values    []any    `json:"values"`
}

// Share is one variant's part of a split, in whole percents; the shares of a split sum to 100.
type Share struct {
	Variant string `json:"variant"`
	Weight  int    `json:"weight"`
}

// Flag is a stored flag.
type Flag struct {
	Key string `json:"key"`
	Definition
	Version   int64     `json:"version"` // the configuration version of its last change
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Override serves one tenant a variant of a flag, before any rule.
type Override struct {
	FlagKey  string    `json:"flag_key"`
	TenantID uuid.UUID `json:"tenant_id"`
	Variant  string    `json:"variant"`
}

// FlagInput is the body of PUT /v1/admin/flags/{key}. A PUT replaces the whole flag, except
// that an omitted salt keeps the flag's current one: changing the salt reshuffles every
// split, which should never happen by accident.
type FlagInput struct {
	Key            string                     `json:"key"`
	Description    string                     `json:"description"`
	Type           Type                       `json:"type"`
	Variants       map[string]json.RawMessage `json:"variants"`
	DefaultVariant string                     `json:"default_variant"`
	Enabled        *bool                      `json:"enabled"`
	Rules          []Rule                     `json:"rules"`
	Salt           string                     `json:"salt"`
}

// definition is the input as a Definition, with empty lists rather than nulls so that a
// flag reads back the way it was written.
func (in FlagInput) definition() Definition {
	d := Definition{
		Description:    in.Description,
		Type:           in.Type,
		Variants:       in.Variants,
		DefaultVariant: in.DefaultVariant,
		Enabled:        in.Enabled != nil && *in.Enabled,
		Rules:          in.Rules,
		Salt:           in.Salt,
	}
	if d.Rules == nil {
		d.Rules = []Rule{}
	}
	for i := range d.Rules {
		if d.Rules[i].Conditions == nil {
			d.Rules[i].Conditions = []Condition{}
		}
	}
	return d
}

// OverrideInput is the body of PUT /v1/admin/flags/{key}/overrides/{tenant_id}.
type OverrideInput struct {
	Variant string `json:"variant"`
}
