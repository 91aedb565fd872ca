package httpx

import (
	"sync"
	"sync/atomic"
)

// readMostly is a map read on every request, without a lock or an allocation, and written
// once per key: each write copies it. Its keys come from fixed sets (route patterns, label
// values), and past maxReadMostly of them it stops remembering, so a key space larger than
// expected costs time rather than memory.
type readMostly[K comparable, V any] struct {
	mu sync.Mutex // serialises writers
	m  atomic.Pointer[map[K]V]
}

const maxReadMostly = 4096

func (c *readMostly[K, V]) get(k K) (V, bool) {
	if m := c.m.Load(); m != nil {
		v, ok := (*m)[k]
		return v, ok
	}
	var zero V
	return zero, false
}

func (c *readMostly[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var old map[K]V
	if p := c.m.Load(); p != nil {
		old = *p
	}
	if len(old) >= maxReadMostly {
		return
	}
	m := make(map[K]V, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[k] = v
	c.m.Store(&m)
}
