// Package ratelimit is the tenant rate limiter: several limits of one request (the tenant's,
// the API key's, a route class's) decided at once in one Redis round trip, and the HTTP
// middleware that answers with the IETF draft RateLimit headers or a 429.
//
// # The algorithm
//
// Every limit is a GCRA bucket (the generic cell rate algorithm, a token bucket told as a
// "theoretical arrival time"): a rate r and a burst b give an emission interval I = 1/r and
// a capacity τ = b·I. A bucket is one Redis string, its TAT, in whole microseconds of Redis
// TIME, so every replica decides on the same clock and the arithmetic is exact: a request
// of cost c is allowed when max(TAT, now)+c·I−now ≤ τ. Because the stored state is a time, not a token
// count, a changed rate or burst applies to the next request with nothing to migrate: what
// was spent stays spent, as time, so a raised burst grants its extra requests at once and a
// changed rate refills at its own pace; a TAT beyond a lowered capacity is stored back as an
// empty bucket, which refills from then on.
//
// One Lua script (EVALSHA, EVAL on NOSCRIPT; Redis 7 or later) reads every bucket of the
// request, and writes them only if all allow, so a request denied by any limit spends from
// none. All keys of a call share one hash tag, {t:<tenant>} (or {ip:<addr>}), so the script
// touches a single Redis Cluster slot. Every key has a TTL: a bucket expires when it would
// be full again.
//
// # Concurrency
//
// A limit with MaxConcurrent > 0 also caps the requests in flight, as Stripe runs a
// concurrency limiter beside its rate limiter. Redis holds, per limit, each replica's claim
// of slots (a hash field per replica: slots, expiry in Redis TIME, version), and the replica
// admits locally while its own in-flight count F fits in its claim: neither admission nor
// release costs a call then. A request that does not fit asks, in the same script call as
// its rate, for a claim of at least F+1, granted only if the unexpired claims of the other
// replicas S leave room (S+F+1 ≤ max), plus bonus slots out of half the headroom left,
// min(wanted−1, ⌊(max−S−F−1)/2⌋), where wanted follows the replica's recent peak: near the
// cap the claims are exact per request, so a cap of 2 over two replicas still admits 2.
// Claims only grow in the request path; a maintainer, running while the replica holds
// claims, renews them and gives back (off the request path, its calls pipelined together)
// what the in-flight requests no longer need, and all of it once idle, within two ticks
// (100 ms). A shrink is a compare-and-set on the claim's version, so it never undoes a
// growth it did not see, and the replica admits within the smaller of the two until it is
// answered. A claim lives Options.ConcurrencyLease unrenewed, so a dead replica leaks at
// most its claim until then; a request never released stops counting after the same lease.
//
// # One round trip, shared
//
// Up to four round trips per core are out at once, each a decision's own call; decisions
// that find them all busy wait for the next, which carries them as one pipeline. A decision
// still costs one round trip, and under load the system calls of a whole batch cost what
// one call's would (see pipeliner).
//
// # When Redis is slow or down
//
// Every decision is bounded by Options.Timeout (50 ms), whatever the client's settings. A
// failed call is answered by the failure mode (FailOpen by default, FailClosed per limit):
// open decides in an in-process limiter with the same limits, so during an outage a tenant
// gets at most its limit per replica; closed denies. A circuit breaker stops calling a Redis
// that keeps failing and lets one probe through after a cooldown, so recovery needs nobody.
// Every such decision is counted in ratelimit_degraded_total.
//
// # The deny cache
//
// An answer from Redis is a snapshot of each bucket. While a snapshot proves that the next
// request on a key would be denied (for at most a second, Options.DenyCache), the limiter
// answers it locally; when it runs out, one request asks Redis and the others wait for its
// answer. A tenant flooding at ten times its limit costs Redis a call or two per request it
// is allowed. The cache can only deny what Redis would deny, never admit.
package ratelimit
