package flags

import (
	"fmt"
	"maps"
	"slices"

	"github.com/google/uuid"
)

// Change is one committed change of the configuration, which a snapshot at the version before
// can apply to itself instead of loading every flag and override again. Exactly one of its
// parts is set. Replicas receive it on the Redis channel; one that is not at the version
// before (it missed a message) loads the whole snapshot instead.
type Change struct {
	Version         int64     `json:"version"`
	Flag            *Flag     `json:"flag,omitempty"`             // created or replaced
	DeletedFlag     string    `json:"deleted_flag,omitempty"`     // deleted, with its overrides
	Override        *Override `json:"override,omitempty"`         // set
	DeletedOverride *Override `json:"deleted_override,omitempty"` // deleted
}

// bare reports whether c names only a version (as replicas of an earlier release announce).
func (c Change) bare() bool {
	return c.Flag == nil && c.DeletedFlag == "" && c.Override == nil && c.DeletedOverride == nil
}

// overrides maps tenants to variant indexes. A snapshot's is never modified: a change builds
// a new one that shares base and copies only recent, the changes since base was built, so
// setting one override costs the size of recent rather than of every override of the flag;
// recent is folded into a new base once it reaches an eighth of it.
type overrides struct {
	base   map[uuid.UUID]int
	recent map[uuid.UUID]int // -1: removed
}

func (o *overrides) get(id uuid.UUID) (int, bool) {
	if i, ok := o.recent[id]; ok {
		return i, i >= 0
	}
	i, ok := o.base[id]
	return i, ok
}

// with answers o with tenant id's override set to variant i (-1 removes it).
func (o overrides) with(id uuid.UUID, i int) overrides {
	recent := make(map[uuid.UUID]int, len(o.recent)+1)
	maps.Copy(recent, o.recent)
	recent[id] = i
	if len(recent) < max(64, len(o.base)/8) {
		return overrides{base: o.base, recent: recent}
	}
	base := maps.Clone(o.base)
	if base == nil {
		base = make(map[uuid.UUID]int, len(recent))
	}
	for id, i := range recent {
		if i < 0 {
			delete(base, id)
		} else {
			base[id] = i
		}
	}
	return overrides{base: base}
}

// all calls fn with every override.
func (o *overrides) all(fn func(id uuid.UUID, i int)) {
	for id, i := range o.base {
		if _, changed := o.recent[id]; !changed {
			fn(id, i)
		}
	}
	for id, i := range o.recent {
		if i >= 0 {
			fn(id, i)
		}
	}
}

// apply answers the snapshot with c applied, at c's version. It fails, and the caller loads
// the whole snapshot instead, when c does not follow from s: the change is not the next
// version, or names a flag or variant s does not hold.
func (s *Snapshot) apply(c Change) (*Snapshot, error) {
	if s == nil || c.Version != s.version+1 {
		return nil, fmt.Errorf("flags: change to version %d does not follow version %d", c.Version, s.Version())
	}
	next := &Snapshot{version: c.Version, flags: maps.Clone(s.flags), keys: s.keys}
	switch {
	case c.Flag != nil:
		f, fe := compileFlag(c.Flag.Key, c.Flag.Definition)
		if fe != nil {
			return nil, fmt.Errorf("flag %q: %s", c.Flag.Key, describe(fe))
		}
		if old := s.flags[c.Flag.Key]; old != nil {
			// The variants may have changed places: the overrides follow them by name. (A
			// change that drops a variant some override serves is refused before it commits.)
			base := make(map[uuid.UUID]int)
			var lost error
			old.overrides.all(func(id uuid.UUID, i int) {
				if j := f.variantIndex(old.variants[i].name); j >= 0 {
					base[id] = j
				} else {
					lost = fmt.Errorf("flag %q: an override serves variant %q, which the change drops", c.Flag.Key, old.variants[i].name)
				}
			})
			if lost != nil {
				return nil, lost
			}
			f.overrides = overrides{base: base}
		} else {
			i, _ := slices.BinarySearch(s.keys, c.Flag.Key)
			next.keys = slices.Insert(slices.Clone(s.keys), i, c.Flag.Key)
		}
		next.flags[c.Flag.Key] = f
	case c.DeletedFlag != "":
		if s.flags[c.DeletedFlag] == nil {
			return nil, fmt.Errorf("flag %q: deleted, but not in the snapshot", c.DeletedFlag)
		}
		delete(next.flags, c.DeletedFlag)
		next.keys = slices.DeleteFunc(slices.Clone(s.keys), func(k string) bool { return k == c.DeletedFlag })
	case c.Override != nil || c.DeletedOverride != nil:
		o, i := c.Override, -1 // -1 removes the override
		if o == nil {
			o = c.DeletedOverride
		}
		old := s.flags[o.FlagKey]
		if old == nil {
			return nil, fmt.Errorf("override of flag %q: no such flag in the snapshot", o.FlagKey)
		}
		if c.Override != nil {
			if i = old.variantIndex(o.Variant); i < 0 {
				return nil, fmt.Errorf("override of flag %q: no variant %q in the snapshot", o.FlagKey, o.Variant)
			}
		}
		f := *old // shares everything immutable
		f.overrides = old.overrides.with(o.TenantID, i)
		next.flags[o.FlagKey] = &f
	default:
		return nil, fmt.Errorf("flags: change to version %d changes nothing", c.Version)
	}
	return next, nil
}
