package flags

import (
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// matches reports whether every condition of r holds for t.
func (r *rule) matches(t *Target) bool {
	for i := range r.conds {
		if !r.conds[i].matches(t) {
			return false
		}
	}
	return true
}

// matches reports whether the condition holds for t. An attribute the target lacks equals
// nothing: not_in and neq hold, every other operator fails. A value of the wrong type for
// the operator fails too; it is never an error.
func (c *cond) matches(t *Target) bool {
	switch c.attr {
	case attrTenantID:
		return c.matchID(t.Tenant.ID)
	case attrPlan:
		if t.Tenant.Plan == "" {
			return c.negative()
		}
		return c.matchString(t.Tenant.Plan)
	case attrTenantCreatedAt:
		if t.Tenant.CreatedAt.IsZero() {
			return false
		}
		return c.matchTime(t.Tenant.CreatedAt)
	}
	v, ok := t.Attributes[c.name]
	if !ok || v == nil {
		return c.negative()
	}
	switch x := v.(type) {
	case string:
		return c.matchString(x)
	case bool:
		if c.op == OpIn || c.op == OpEq || c.op == OpNotIn || c.op == OpNeq {
			return slices.Contains(c.bools, x) != c.negative()
		}
		return false
	case time.Time:
		return c.matchTime(x)
	case []any:
		return c.op == OpContains && slices.ContainsFunc(x, c.equalsAny)
	case []string:
		return c.op == OpContains && slices.ContainsFunc(x, func(s string) bool { return slices.Contains(c.strs, s) })
	}
	if n, ok := number(v); ok {
		return c.matchNumber(n)
	}
	return false
}

// negative reports whether the operator holds for what equals none of its values.
func (c *cond) negative() bool { return c.op == OpNotIn || c.op == OpNeq }

func (c *cond) matchID(id uuid.UUID) bool {
	return slices.Contains(c.ids, id) != c.negative()
}

func (c *cond) matchString(s string) bool {
	switch c.op {
	case OpIn, OpEq, OpNotIn, OpNeq:
		return slices.Contains(c.strs, s) != c.negative()
	case OpStartsWith:
		return slices.ContainsFunc(c.strs, func(p string) bool { return strings.HasPrefix(s, p) })
	case OpEndsWith:
		return slices.ContainsFunc(c.strs, func(p string) bool { return strings.HasSuffix(s, p) })
	case OpContains:
		return slices.ContainsFunc(c.strs, func(p string) bool { return strings.Contains(s, p) })
	case OpBefore, OpAfter:
		t, err := time.Parse(time.RFC3339Nano, s)
		return err == nil && c.matchTime(t)
	}
	return false
}

func (c *cond) matchNumber(n float64) bool {
	switch c.op {
	case OpIn, OpEq, OpNotIn, OpNeq:
		return slices.Contains(c.nums, n) != c.negative()
	case OpGt:
		return n > c.nums[0]
	case OpGte:
		return n >= c.nums[0]
	case OpLt:
		return n < c.nums[0]
	case OpLte:
		return n <= c.nums[0]
	}
	return false
}

func (c *cond) matchTime(t time.Time) bool {
	switch c.op {
	case OpBefore:
		return t.Before(c.at)
	case OpAfter:
		return t.After(c.at)
	}
	return false
}

// equalsAny reports whether v, an element of an array attribute, is one of the values.
func (c *cond) equalsAny(v any) bool {
	switch x := v.(type) {
	case string:
		return slices.Contains(c.strs, x)
	case bool:
		return slices.Contains(c.bools, x)
	}
	n, ok := number(v)
	return ok && slices.Contains(c.nums, n)
}

// number reads the numeric types a context attribute may hold: float64 from JSON, the
// integer types from Go callers.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint64:
		return float64(x), true
	case uint32:
		return float64(x), true
	}
	return 0, false
}
