package server

import (
	"net/url"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// clusterReload is how often a cluster client reloads the slot map unless REDIS_URL says
// (cluster_state_reload_interval).
const clusterReload = 2 * time.Second

// openRedis connects to REDIS_URL: one server, or a Redis Cluster when the URL names more
// than one node with addr parameters (go-redis's ParseClusterURL form,
// redis://h1:7000?addr=h2:7001&addr=h3:7002; the nodes named are seeds, the rest are
// discovered). Every key the service writes in one call shares a hash tag, so it works the
// same on either.
func openRedis(redisURL string) (goredis.UniversalClient, error) {
	u, err := url.Parse(redisURL)
	if err != nil {
		return nil, err
	}
	if u.Query().Has("addr") {
		opts, err := goredis.ParseClusterURL(redisURL)
		if err != nil {
			return nil, err
		}
		// A stalled call gives its connection back at the caller's deadline (the rate
		// limiter's 50 ms) rather than at the read timeout.
		opts.ContextTimeoutEnabled = true
		// A dead master is no MOVED answer: the client learns of its promoted replica only
		// when it reloads the slot map, every minute by default. Every 2 s keeps a failover's
		// degraded decisions to seconds, for a CLUSTER SLOTS call every 2 s.
		if !u.Query().Has("cluster_state_reload_interval") {
			opts.ClusterStateReloadInterval = clusterReload
		}
		return goredis.NewClusterClient(opts), nil
	}
	opts, err := goredis.ParseURL(redisURL)
	if err != nil {
		return nil, err
	}
	opts.ContextTimeoutEnabled = true
	return goredis.NewClient(opts), nil
}
