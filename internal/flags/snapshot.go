package flags

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/errs"
)

// Reason says why an evaluation answered what it did, in OpenFeature's words.
type Reason string

const (
	ReasonStatic         Reason = "STATIC"          // the flag has no rules
	ReasonTargetingMatch Reason = "TARGETING_MATCH" // an override, or a rule's variant
	ReasonSplit          Reason = "SPLIT"           // a rule's split
	ReasonDefault        Reason = "DEFAULT"         // no rule held
	ReasonDisabled       Reason = "DISABLED"        // the kill switch is on
	ReasonError          Reason = "ERROR"           // see the ErrorCode
)

// ErrorCode is OpenFeature's error code of an evaluation that answered the caller's default.
type ErrorCode string

const (
	CodeFlagNotFound        ErrorCode = "FLAG_NOT_FOUND"
	CodeTypeMismatch        ErrorCode = "TYPE_MISMATCH"
	CodeTargetingKeyMissing ErrorCode = "TARGETING_KEY_MISSING"
	CodeParseError          ErrorCode = "PARSE_ERROR"
	CodeInvalidContext      ErrorCode = "INVALID_CONTEXT"
	CodeGeneral             ErrorCode = "GENERAL"
)

// Tenant is what evaluation knows of the calling tenant. It comes from the server's tenant
// record, never from the caller.
type Tenant struct {
	ID        uuid.UUID
	Plan      string
	CreatedAt time.Time
}

// Target is what a flag is evaluated for.
type Target struct {
	Tenant Tenant
	// Key places the target in splits; empty means the tenant's id.
	Key string
	// Attributes is the caller's context. Conditions on tenant_id, plan and
	// tenant_created_at read Tenant, never this map, so a caller cannot set them.
	Attributes map[string]any
}

// Result is one evaluation. When Reason is ReasonError, Value is nil and the caller's
// default applies.
type Result struct {
	Key       string
	Value     any // shared with the snapshot: never modify it
	Variant   string
	Reason    Reason
	ErrorCode ErrorCode
}

// Snapshot is an immutable view of every flag at one configuration version. Replicas swap
// whole snapshots, so an evaluation, or a request that evaluates through one snapshot, never
// sees half of a change. A nil *Snapshot is the empty one.
type Snapshot struct {
	version int64
	flags   map[string]*flag
	keys    []string // sorted
}

// NewSnapshot compiles flags and overrides at a version. A flag that does not compile (the
// operator's PUT refuses such flags, so only a hand-edited row can) is left out, and so is
// an override of a missing flag or variant: the rest still serve, and the returned error
// names what was left out.
func NewSnapshot(version int64, flags []Flag, overrides []Override) (*Snapshot, error) {
	s := &Snapshot{version: version, flags: make(map[string]*flag, len(flags))}
	var problems []error
	for _, def := range flags {
		f, fe := compileFlag(def.Key, def.Definition)
		if fe != nil {
			problems = append(problems, fmt.Errorf("flag %q left out: %s", def.Key, describe(fe)))
			continue
		}
		s.flags[def.Key] = f
		s.keys = append(s.keys, def.Key)
	}
	sort.Strings(s.keys)
	for _, o := range overrides {
		f := s.flags[o.FlagKey]
		i := -1
		if f != nil {
			i = f.variantIndex(o.Variant)
		}
		if i < 0 {
			problems = append(problems, fmt.Errorf("override of flag %q for tenant %s left out: no such flag or variant %q", o.FlagKey, o.TenantID, o.Variant))
			continue
		}
		if f.overrides.base == nil {
			f.overrides.base = make(map[uuid.UUID]int)
		}
		f.overrides.base[o.TenantID] = i
	}
	return s, errors.Join(problems...)
}

// describe lists field errors on one line, for the log.
func describe(fe errs.Fields) string {
	parts := make([]string, len(fe))
	for i, e := range fe {
		parts[i] = e.Field + " " + e.Message
	}
	return strings.Join(parts, "; ")
}

// Version answers the configuration version the snapshot holds; 0 for the empty snapshot.
func (s *Snapshot) Version() int64 {
	if s == nil {
		return 0
	}
	return s.version
}

// Len answers the number of flags.
func (s *Snapshot) Len() int {
	if s == nil {
		return 0
	}
	return len(s.keys)
}

// Evaluate answers flag key for t. want is the type the caller expects (TypeAny accepts
// every type). It never calls out and never panics: problems answer ReasonError with a code.
//
// The order: a missing flag is FLAG_NOT_FOUND; a disabled flag serves its default variant
// (DISABLED); then the tenant's override (TARGETING_MATCH); then the first rule that holds
// (TARGETING_MATCH, or SPLIT for a split); otherwise the default variant (DEFAULT, or
// STATIC when the flag has no rules).
func (s *Snapshot) Evaluate(key string, want Type, t Target) Result {
	return s.evaluate(key, want, &t)
}

func (s *Snapshot) evaluate(key string, want Type, t *Target) Result {
	var f *flag
	if s != nil {
		f = s.flags[key]
	}
	switch {
	case f == nil:
		return Result{Key: key, Reason: ReasonError, ErrorCode: CodeFlagNotFound}
	case want != TypeAny && want != f.typ:
		return Result{Key: key, Reason: ReasonError, ErrorCode: CodeTypeMismatch}
	case !f.enabled:
		return f.result(f.def, ReasonDisabled)
	}
	if i, ok := f.overrides.get(t.Tenant.ID); ok {
		return f.result(i, ReasonTargetingMatch)
	}
	for i := range f.rules {
		r := &f.rules[i]
		if !r.matches(t) {
			continue
		}
		if r.variant >= 0 {
			return f.result(r.variant, ReasonTargetingMatch)
		}
		b, ok := targetBucket(f.salt, t)
		if !ok {
			return Result{Key: key, Reason: ReasonError, ErrorCode: CodeTargetingKeyMissing}
		}
		return f.result(r.pick(b), ReasonSplit)
	}
	if len(f.rules) == 0 {
		return f.result(f.def, ReasonStatic)
	}
	return f.result(f.def, ReasonDefault)
}

// EvaluateAll answers every flag for t, by key, all from this one snapshot.
func (s *Snapshot) EvaluateAll(t Target) []Result {
	out := make([]Result, 0, s.Len())
	if s == nil {
		return out
	}
	for _, key := range s.keys {
		out = append(out, s.evaluate(key, TypeAny, &t))
	}
	return out
}

func (f *flag) result(i int, reason Reason) Result {
	v := &f.variants[i]
	return Result{Key: f.key, Value: v.value, Variant: v.name, Reason: reason}
}

// pick answers the variant of bucket b.
func (r *rule) pick(b uint32) int {
	for _, s := range r.split {
		if b < s.upTo {
			return s.variant
		}
	}
	// Unreachable: the last share ends at Buckets. Zero-weight shares at the end end there
	// too, which is why the search takes the first share that covers b.
	return r.split[len(r.split)-1].variant
}
