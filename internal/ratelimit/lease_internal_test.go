package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A call asking for 64 units gets at most half of what the bucket has left beyond its own,
// so the grants shrink to single requests as the bucket empties: 5, 3, 1, 1 of 10.
func TestLeaseGrantHalvesTheRest(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "ratelimit-test:" + hex.EncodeToString(b) + ":"
	l, err := New(client, Options{Prefix: prefix, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.prepare([]Limit{{Scope: "t:lease", Policy: "tenant", Rate: 1.0 / 3600, Burst: 10}})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Del(context.Background(), c.keys...)
	for i, want := range []int64{5, 3, 1, 1, 0} {
		vals, err := l.redis.do(context.Background(), l.redis.deadlines.get(), l.script, c.keys, c.args(64, l.replica, l.hot.lease))
		if err != nil {
			t.Fatal(err)
		}
		allowed, units, _, _, err := c.parseReply(vals)
		if err != nil || units != want || allowed != (want > 0) {
			t.Fatalf("call %d: allowed %t, %d units (%v), want %d", i+1, allowed, units, err, want)
		}
	}
}
