package auth

import (
	"sync"
	"time"
)

// tokenCache remembers tokens that passed verification until they expire, so a client that
// sends the same token on every request pays for one Ed25519 check, not one per request.
// Only verified tokens enter it, keyed by their exact text, so it can never admit a token
// that verification would refuse while the keys are unchanged.
type tokenCache struct {
	mu  sync.RWMutex
	m   map[string]cachedToken
	max int
}

type cachedToken struct {
	p   Principal
	exp time.Time
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{m: make(map[string]cachedToken), max: max}
}

func (c *tokenCache) get(token string, now time.Time) (Principal, bool) {
	c.mu.RLock()
	e, ok := c.m[token]
	c.mu.RUnlock()
	if !ok || !now.Before(e.exp) {
		return Principal{}, false
	}
	return e.p, true
}

func (c *tokenCache) put(token string, p Principal, exp, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		// Full: drop the expired entries, or if none, an arbitrary tenth (map order is random).
		n := 0
		for k, e := range c.m {
			if !now.Before(e.exp) || n < c.max/10 {
				delete(c.m, k)
				n++
			}
		}
	}
	c.m[token] = cachedToken{p: p, exp: exp}
}
