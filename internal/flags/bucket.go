package flags

import (
	"encoding/binary"
	"math/bits"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/ids"
)

// Buckets is how finely splits divide targets. Weights are whole percents today; 10,000
// buckets leave room for basis points without moving anyone.
const Buckets = 10_000

// bucketLimit is the largest multiple of Buckets that fits in 32 bits. Hashes at or above it
// are rehashed rather than reduced, so that every bucket is hit by exactly as many hashes:
// plain modulo would favour the first 7,296 buckets (by one part in 429,497).
const bucketLimit = (1 << 32) / Buckets * Buckets

// Bucket answers the bucket in [0, Buckets) of a targeting key under a flag's salt: the
// low-order digits of MurmurHash3 (x86, 32 bits) of "salt:key". A split gives each variant
// a contiguous range of buckets in the order of its shares, so raising a share only adds
// buckets to it. The salt never contains ':', so "salt:key" is unambiguous.
func Bucket(salt, key string) int {
	var buf [160]byte
	b := append(buf[:0], salt...)
	b = append(b, ':')
	b = append(b, key...)
	return int(bucketOf(b))
}

// bucketOf reduces a hash of b to a bucket without modulo bias.
func bucketOf(b []byte) uint32 {
	h := murmur3(0, b)
	for seed := uint32(1); h >= bucketLimit; seed++ {
		h = murmur3(seed, b)
	}
	return h % Buckets
}

// targetBucket is Bucket for a target, without allocating: the targeting key, or the
// tenant's id in its canonical text form when there is none. ok is false when the target has
// neither, and so cannot be placed in a split.
func targetBucket(salt string, t *Target) (bucket uint32, ok bool) {
	var buf [160]byte
	b := append(buf[:0], salt...)
	b = append(b, ':')
	switch {
	case t.Key != "":
		b = append(b, t.Key...)
	case t.Tenant.ID != uuid.Nil:
		b = ids.AppendUUID(b, t.Tenant.ID)
	default:
		return 0, false
	}
	return bucketOf(b), true
}

// murmur3 is MurmurHash3_x86_32 (Austin Appleby, public domain), the hash Unleash and flagd
// bucket with: fast, and well mixed by its final avalanche step.
func murmur3(seed uint32, data []byte) uint32 {
	const c1, c2 = 0xcc9e2d51, 0x1b873593
	h := seed
	n := len(data)
	for len(data) >= 4 {
		k := binary.LittleEndian.Uint32(data)
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
		h = bits.RotateLeft32(h, 13)
		h = h*5 + 0xe6546b64
		data = data[4:]
	}
	var k uint32
	switch len(data) {
	case 3:
		k ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		k ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		k ^= uint32(data[0])
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
	}
	h ^= uint32(n)
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}
