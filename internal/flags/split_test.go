package flags

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"
)

const splitPopulation = 100_000

// share answers the fraction of ids that get each variant of key.
func variantShares(s *Snapshot, key string, ids []uuid.UUID) map[string]float64 {
	counts := map[string]int{}
	for _, id := range ids {
		counts[s.Evaluate(key, TypeAny, tenantTarget(id)).Variant]++
	}
	out := map[string]float64{}
	for v, c := range counts {
		out[v] = float64(c) / float64(len(ids))
	}
	return out
}

func within(got, want, tolerance float64) bool { return got >= want-tolerance && got <= want+tolerance }

// Test 1: splits serve their weights to within one point, for every kind of tenant id, and
// two flags split independently.
func TestSplitsServeTheirWeights(t *testing.T) {
	three := Flag{Key: "three", Definition: Definition{
		Type:           TypeString,
		Variants:       map[string]json.RawMessage{"a": raw(`"a"`), "b": raw(`"b"`), "c": raw(`"c"`)},
		DefaultVariant: "a",
		Enabled:        true,
		Rules:          []Rule{{Conditions: []Condition{}, Split: []Share{{"a", 33}, {"b", 33}, {"c", 34}}}},
		Salt:           "three",
	}}
	s := mustSnapshot(t, 1, []Flag{
		boolFlag("thirty", percent(30)),
		boolFlag("thirty-other", percent(30)),
		boolFlag("half", percent(50)),
		three,
	})
	for name, ids := range populations(splitPopulation) {
		t.Run(name, func(t *testing.T) {
			checks := []struct {
				key     string
				variant string
				want    float64
			}{
				{"thirty", "on", .30},
				{"thirty-other", "on", .30},
				{"half", "on", .50},
				{"half", "off", .50},
				{"three", "a", .33},
				{"three", "b", .33},
				{"three", "c", .34},
			}
			for _, c := range checks {
				if got := variantShares(s, c.key, ids)[c.variant]; !within(got, c.want, .01) {
					t.Errorf("%s: %s serves %s to %.2f%%, want %.0f%% ± 1", name, c.key, c.variant, got*100, c.want*100)
				}
			}

			both := 0
			for _, id := range ids {
				a := s.Evaluate("thirty", TypeAny, tenantTarget(id)).Variant == "on"
				b := s.Evaluate("thirty-other", TypeAny, tenantTarget(id)).Variant == "on"
				if a && b {
					both++
				}
			}
			if got := float64(both) / float64(len(ids)); !within(got, .09, .01) {
				t.Errorf("%s: two 30%% flags overlap on %.2f%%, want 9%% ± 1 (independent)", name, got*100)
			}
		})
	}
}

// Test 2: raising a percentage keeps everyone who had the flag, lowering only removes, and
// neither moves anyone in another flag.
func TestChangingAPercentageOnlyAddsOrRemoves(t *testing.T) {
	snapshotAt := func(pct int) *Snapshot {
		return mustSnapshot(t, int64(pct), []Flag{boolFlag("rollout", percent(pct)), boolFlag("other", percent(40))})
	}
	at30, at50, at10 := snapshotAt(30), snapshotAt(50), snapshotAt(10)
	for name, ids := range populations(splitPopulation) {
		t.Run(name, func(t *testing.T) {
			var gained, lost int
			for _, id := range ids {
				target := tenantTarget(id)
				on := func(s *Snapshot) bool { return s.Evaluate("rollout", TypeAny, target).Variant == "on" }
				if on(at30) && !on(at50) {
					t.Fatalf("tenant %s had the flag at 30%% and lost it at 50%%", id)
				}
				if on(at10) && !on(at30) {
					t.Fatalf("tenant %s has the flag at 10%% but did not at 30%%", id)
				}
				if !on(at30) && on(at50) {
					gained++
				}
				if on(at30) && !on(at10) {
					lost++
				}
				other := at30.Evaluate("other", TypeAny, target).Variant
				if at50.Evaluate("other", TypeAny, target).Variant != other || at10.Evaluate("other", TypeAny, target).Variant != other {
					t.Fatalf("tenant %s moved in another flag", id)
				}
			}
			if g := float64(gained) / float64(len(ids)); !within(g, .20, .01) {
				t.Errorf("raising 30%% → 50%% added %.2f%%, want about 20%%", g*100)
			}
			if l := float64(lost) / float64(len(ids)); !within(l, .20, .01) {
				t.Errorf("lowering 30%% → 10%% removed %.2f%%, want about 20%%", l*100)
			}
		})
	}
}

// A targeting key places the target instead of its tenant: users of one tenant spread.
func TestSplitsBucketOnTheTargetingKey(t *testing.T) {
	s := mustSnapshot(t, 1, []Flag{boolFlag("f", percent(50))})
	tenant := Tenant{ID: uuid.New()}
	seen := map[string]bool{}
	for _, key := range []string{"u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9", "u10", "u11", "u12"} {
		res := s.Evaluate("f", TypeAny, Target{Tenant: tenant, Key: key})
		want := "off"
		if Bucket("f", key) < Buckets/2 {
			want = "on"
		}
		if res.Variant != want || res.Reason != ReasonSplit {
			t.Errorf("key %s: %s (%s), want %s (SPLIT)", key, res.Variant, res.Reason, want)
		}
		seen[res.Variant] = true
	}
	if len(seen) != 2 {
		t.Errorf("12 users of one tenant all got %v: the targeting key is ignored", seen)
	}
}
