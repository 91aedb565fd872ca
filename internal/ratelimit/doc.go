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
// of 100 ms. A shrink is a compare-and-set on the claim's version, so it never undoes a
// growth it did not see, and the replica admits within the smaller of the two until it is
// answered. A claim admits locally only under the cap it was granted for: a lowered cap
// holds at once, the next call cutting the claim to fit (another replica's claim beyond it
// denies until that replica shrinks it or asks again, within two ticks). A claim lives
// Options.ConcurrencyLease unrenewed, so a dead replica leaks at most its claim until then;
// a request never released stops counting after the same lease (less up to an eighth).
//
// # Rate leases
//
// A tenant far below its limit would still pay a call per request. So when a limit set
// (the limits of one request, decided and spent together; every cost 1) is hot on a
// replica, the call that decides a request may spend g ≥ 1 units from every bucket of the
// set at once, and the replica admits the other g−1 requests locally, with no call:
// g = 1 + min(wanted−1, ⌊(available−1)/2⌋), where available is the whole units the
// tightest bucket holds, so near exhaustion every request is decided in Redis, exactly as
// before. wanted follows the set's local rate (its 20 ms worth, measured over 100 ms
// windows; at most 64 and a quarter of the smallest burst) and starts at 1, so a cold
// tenant, or a short burst of requests, is decided per request. One call asks for units at
// a time; the requests that find the lease empty meanwhile wait for its answer (up to three
// answers) rather than call. Units live 100 ms: the rest is dropped, not refunded, since a
// refund is a second write racing the other replicas' spends, for a fraction of a second of
// the rate. Costs other than 1 never lease. Requests admitted from a lease are counted in
// ratelimit_lease_admitted_total.
//
// What this keeps and what it costs: a replica admits only units Redis has spent, so from
// a full bucket the tenant gets at most the burst plus the rate times the time, across
// replicas. A unit may be admitted up to 100 ms after it was spent, so over a window W the
// bound is the burst plus the rate times W+100 ms. The cost is under-admission: each
// replica may strand up to its lease (≤ 64 units, and never more than half of what was
// left) for 100 ms when its requests stop. Remaining in the headers of a request admitted
// from a lease is an estimate: what Redis held at the grant, refilled since, counting the
// lease's units as this client's, blind to other replicas' spends since.
//
// # One round trip, shared
//
// A request that is not admitted from a lease and a claim costs one round trip: its rate
// and, if it does not fit its replica's claim, the claim's growth, in one script call. Up to
// four round trips per core are out at once, each a decision's own call; decisions that find
// them all busy wait for the next, which carries them as one pipeline, so under load the
// system calls of a whole batch cost what one call's would (see pipeliner).
//
// # When Redis is slow or down
//
// Every decision is bounded by Options.Timeout (50 ms), whatever the client's settings. A
// failed call is answered by the failure mode (FailOpen by default, FailClosed per limit):
// open decides in an in-process limiter with the same limits, so during an outage a tenant
// gets at most its limit per replica; closed denies. Units already leased are still
// admitted: Redis spent them. A circuit breaker stops calling a Redis that keeps failing
// and lets one probe through after a cooldown, so recovery needs nobody. Every such
// decision is counted in ratelimit_degraded_total.
//
// # The deny cache
//
// An answer from Redis is a snapshot of each bucket. While a snapshot proves that the next
// request on a key would be denied (for at most a second, Options.DenyCache), the limiter
// answers it locally; when it runs out, one request asks Redis and the others wait for its
// answer. A tenant flooding at ten times its limit costs Redis a call or two per request it
// is allowed. The cache can only deny what Redis would deny, never admit; a lease's units
// are looked at before it, since Redis has spent them already.
//
// # Budgets charged after the fact
//
// Some budgets are spent not by every request but by the ones that turn out badly: a client
// address's failed authentications (AddrBudget, the "auth" policy that PerIP routes spend
// too). Such a budget is charged with Allow once the failure is known, and checked before
// the work it bounds with Peek, which answers what Allow would and spends nothing: the deny
// cache, then the script asked for no units, or the in-process limiter read without writing.
package ratelimit
