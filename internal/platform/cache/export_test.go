package cache

// Len answers how many entries the cache holds, fresh or expired.
func (c *Cache[K, V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// Waiters answers how many callers wait on the load of k in flight, -1 if there is none.
func (c *Cache[K, V]) Waiters(k K) int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if f, ok := c.flights[k]; ok {
		return f.waiters
	}
	return -1
}
