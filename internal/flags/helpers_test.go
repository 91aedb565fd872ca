package flags

import (
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"
)

// raw is a JSON literal, for variant values.
func raw(s string) json.RawMessage { return json.RawMessage(s) }

// boolFlag is an enabled on/off flag whose default is off.
func boolFlag(key string, rules ...Rule) Flag {
	if rules == nil {
		rules = []Rule{}
	}
	return Flag{Key: key, Definition: Definition{
		Type:           TypeBoolean,
		Variants:       map[string]json.RawMessage{"on": raw("true"), "off": raw("false")},
		DefaultVariant: "off",
		Enabled:        true,
		Rules:          rules,
		Salt:           key,
	}}
}

// percent is a rule that serves on to pct percent of targets.
func percent(pct int) Rule {
	return Rule{Conditions: []Condition{}, Split: []Share{{"on", pct}, {"off", 100 - pct}}}
}

func mustSnapshot(t testing.TB, version int64, flags []Flag, overrides ...Override) *Snapshot {
	t.Helper()
	s, err := NewSnapshot(version, flags, overrides)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Populations of tenant ids the split tests run over: random v4 ids (from a fixed seed, so
// a failure reproduces), sequential ids (a counter in the low bytes, the worst case for a
// weak hash), and v7 ids as the service makes them (time-ordered).
func randomIDs(n int) []uuid.UUID {
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]uuid.UUID, n)
	for i := range ids {
		binary.BigEndian.PutUint64(ids[i][:8], rng.Uint64())
		binary.BigEndian.PutUint64(ids[i][8:], rng.Uint64())
		ids[i][6] = ids[i][6]&0x0f | 0x40
		ids[i][8] = ids[i][8]&0x3f | 0x80
	}
	return ids
}

func sequentialIDs(n int) []uuid.UUID {
	ids := make([]uuid.UUID, n)
	for i := range ids {
		binary.BigEndian.PutUint64(ids[i][8:], uint64(i+1))
	}
	return ids
}

func v7IDs(n int) []uuid.UUID {
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
	}
	return ids
}

func populations(n int) map[string][]uuid.UUID {
	return map[string][]uuid.UUID{"random": randomIDs(n), "sequential": sequentialIDs(n), "v7": v7IDs(n)}
}

func tenantTarget(id uuid.UUID) Target { return Target{Tenant: Tenant{ID: id, Plan: "free"}} }
