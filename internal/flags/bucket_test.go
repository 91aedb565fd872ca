package flags

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
)

// The reference vectors of MurmurHash3_x86_32 (SMHasher's author's verification set, as
// collected at https://stackoverflow.com/q/14747343): our hash is the standard one, so other
// implementations (Unleash's, flagd's) can reproduce a bucket.
func TestMurmur3ReferenceVectors(t *testing.T) {
	tests := []struct {
		data string
		seed uint32
		want uint32
	}{
		{"", 0, 0},
		{"", 1, 0x514E28B7},
		{"", 0xffffffff, 0x81F16F39},
		{"\xff\xff\xff\xff", 0, 0x76293B50},
		{"\x21\x43\x65\x87", 0, 0xF55B516B},
		{"\x21\x43\x65\x87", 0x5082EDEE, 0x2362F9DE},
		{"\x21\x43\x65", 0, 0x7E4A8634},
		{"\x21\x43", 0, 0xA0F7B07A},
		{"\x21", 0, 0x72661CF4},
		{"\x00\x00\x00\x00", 0, 0x2362F9DE},
		{"\x00\x00\x00", 0, 0x85F0B427},
		{"\x00\x00", 0, 0x30F4C306},
		{"\x00", 0, 0x514E28B7},
		{"Hello, world!", 1234, 0xFAF6CDB3},
		{"The quick brown fox jumps over the lazy dog", 0x9747b28c, 0x2FA826CD},
	}
	for _, tt := range tests {
		if got := murmur3(tt.seed, []byte(tt.data)); got != tt.want {
			t.Errorf("murmur3(%#x, %q) = %#x, want %#x", tt.seed, tt.data, got, tt.want)
		}
	}
}

// Golden vectors pin the bucketing: a change here moves tenants between variants of every
// running split, so it must never happen by accident.
func TestBucketGoldenVectors(t *testing.T) {
	tests := []struct {
		salt, key string
		want      int
	}{
		{"checkout", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", 7869},
		{"checkout", "00000000-0000-0000-0000-000000000001", 130},
		{"checkout", "user-42", 6941},
		{"new-billing", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", 9725},
		{"new-billing", "", 7288},
		{"project-limit", "acme", 8963},
		{"golden", "k275634", 507}, // its first hash, 4294961524, is above the limit: rehashed
	}
	for _, tt := range tests {
		if got := Bucket(tt.salt, tt.key); got != tt.want {
			t.Errorf("Bucket(%q, %q) = %d, want %d", tt.salt, tt.key, got, tt.want)
		}
	}
}

func TestTargetBucketIsBucketOfTheTenantID(t *testing.T) {
	id := uuid.MustParse("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
	got, ok := targetBucket("s", &Target{Tenant: Tenant{ID: id}})
	if !ok || int(got) != Bucket("s", id.String()) {
		t.Errorf("targetBucket = %d, %v; want Bucket of the id, %d", got, ok, Bucket("s", id.String()))
	}
	got, ok = targetBucket("s", &Target{Tenant: Tenant{ID: id}, Key: "user-1"})
	if !ok || int(got) != Bucket("s", "user-1") {
		t.Errorf("targetBucket with a key = %d, want Bucket of the key", got)
	}
	if _, ok := targetBucket("s", &Target{}); ok {
		t.Error("a target without tenant or key has a bucket")
	}
}

// Every bucket is equally likely: over a million keys, each of the 10,000 buckets gets
// about 100, and none strays beyond what chance allows (6 standard deviations of a
// binomial(1e6, 1e-4), so the test is deterministic in practice and stable forever as the
// keys are fixed).
func TestBucketsAreUniform(t *testing.T) {
	const n = 1_000_000
	var counts [Buckets]int
	for i := range n {
		counts[Bucket("uniform", fmt.Sprintf("key-%d", i))]++
	}
	for b, c := range counts {
		if c < 100-60 || c > 100+60 {
			t.Fatalf("bucket %d got %d of %d keys, want about 100", b, c, n)
		}
	}
}

// The rehash path of the unbiased reduction: a key whose first hash falls in the top 7,296
// values is hashed again with the next seed.
func TestBucketRehashesAboveTheLimit(t *testing.T) {
	const key = "k275634" // found by search: about one key in 590,000 needs the rehash
	b := []byte("golden:" + key)
	if h := murmur3(0, b); h < bucketLimit {
		t.Fatalf("first hash %d is below the limit", h)
	}
	want := murmur3(1, b) % Buckets
	if got := Bucket("golden", key); uint32(got) != want {
		t.Errorf("Bucket = %d, want %d (the second seed's)", got, want)
	}
}
