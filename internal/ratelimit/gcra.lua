-- Decides several GCRA limits at once, and spends from them only if all allow.
--
-- KEYS: the n buckets, then the in-flight set of each limit that caps concurrency, in order.
-- ARGV: n, then per limit: interval µs, burst, cost, max in flight (0: no cap); then, if a
--       limit caps concurrency, the lease in µs and the request's id.
-- Returns {allowed (0|1), then per limit: µs in use before the request, requests in flight
--          before it (-1 without a cap)}.
--
-- Times are whole microseconds of Redis TIME: below 2^53, so Lua's doubles hold them
-- exactly, and Redis 7 hands Lua numbers to commands in full precision (Redis 6 kept 14
-- digits, too few for this script).
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local n = tonumber(ARGV[1])
local out = {1}
local tats = {}
local c = n -- the last in-flight set's index in KEYS
local tat = redis.call('MGET', unpack(KEYS, 1, n))

for i = 1, n do
  local a = 4 * i - 2
  local interval, burst = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local cost, cap = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local tau = interval * burst

  local used = (tonumber(tat[i]) or now) - now
  if used < 0 then
    used = 0
  elseif used > tau then
    -- The limit was lowered: the bucket is empty under it, and refills from now at its
    -- rate, so store it that way, denied or not.
    used = tau
    redis.call('SET', KEYS[i], now + tau, 'PX', math.ceil(tau / 1000))
  end
  local spend = interval * cost
  if used + spend > tau then out[1] = 0 end
  tats[i] = now + used + spend

  local inflight = -1
  if cap > 0 then
    c = c + 1
    redis.call('ZREMRANGEBYSCORE', KEYS[c], '-inf', now) -- leases that expired
    inflight = redis.call('ZCARD', KEYS[c])
    if inflight >= cap then out[1] = 0 end
  end
  out[2 * i] = used
  out[2 * i + 1] = inflight
end

if out[1] == 1 then
  for i = 1, n do
    redis.call('SET', KEYS[i], tats[i], 'PX', math.ceil((tats[i] - now) / 1000))
  end
  if c > n then
    local lease, id = tonumber(ARGV[4 * n + 2]), ARGV[4 * n + 3]
    for k = n + 1, c do
      redis.call('ZADD', KEYS[k], now + lease, id)
      redis.call('PEXPIRE', KEYS[k], math.ceil(lease / 1000))
    end
  end
end
return out
