-- Decides several GCRA limits at once, and spends from them only if all allow; grows this
-- replica's claims of in-flight slots where it asks to.
--
-- KEYS: the n buckets, then the claims hash of each limit that caps concurrency, in order.
-- ARGV: n, the units wanted (1, or more for a lease: only when every cost is 1; 0 for a peek,
--       which decides and spends nothing), then per
--       limit: interval µs, burst, cost, max in flight (0: no cap); then the replica's id,
--       the claim lease in µs, and per capped limit: the slots needed (0: the replica has
--       room in its claim and asks nothing) and the slots wanted.
-- Returns {allowed (0|1), units spent from each bucket (g), then per limit: µs in use before
--          the request, requests in flight before it by the claims (-1 when not asked),
--          then per capped limit: the replica's claim, its version and µs to live (0s when
--          not asked)}.
--
-- A claim is a field of the hash named by the replica: "<slots> <expiry µs> <version>".
-- Versions only grow (Redis TIME, or one more), so the replica keeps the newest answer.
--
-- Times are whole microseconds of Redis TIME: below 2^53, so Lua's doubles hold them
-- exactly, and Redis 7 hands Lua numbers to commands in full precision (Redis 6 kept 14
-- digits, too few for this script). string.format('%d') writes them in full too.
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local n = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local out = {1, 0}
local useds = {}
local avail = math.huge -- whole units the tightest bucket holds before the request
local tat = redis.call('MGET', unpack(KEYS, 1, n))

for i = 1, n do
  local a = 4 * i - 1
  local interval, burst = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local cost = tonumber(ARGV[a + 2])
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
  if used + interval * cost > tau then out[1] = 0 end
  avail = math.min(avail, math.floor((tau - used) / interval))
  useds[i] = used
  out[1 + 2 * i] = used
  out[2 + 2 * i] = -1
end

-- Claims: S is what the other replicas hold unexpired; this replica gets at least what it
-- needs if S leaves room, plus at most half the headroom left, so near the cap it is exact.
local base = 4 * n + 3
local replica, lease = ARGV[base], tonumber(ARGV[base + 1])
local k, j = n, 0
local grants = {}
for i = 1, n do
  local cap = tonumber(ARGV[4 * i + 2])
  if cap > 0 then
    k, j = k + 1, j + 1
    local need = tonumber(ARGV[base + 2 * j])
    local wanted = tonumber(ARGV[base + 2 * j + 1])
    if need > 0 then
      local fields = redis.call('HGETALL', KEYS[k])
      local others, own, ver = 0, 0, 0
      for f = 1, #fields, 2 do
        local s, e, v = string.match(fields[f + 1], '^(%d+) (%d+) (%d+)$')
        s, e, v = tonumber(s), tonumber(e), tonumber(v)
        if fields[f] == replica then
          ver = v
          if e > now then own = s end
        elseif e > now then
          others = others + s
        else
          redis.call('HDEL', KEYS[k], fields[f]) -- a claim its replica let expire
        end
      end
      -- A claim that fits beside the others stands; one that does not (the cap was
      -- lowered) is cut to what this request needs, if that fits.
      local grant = own
      if own < need or others + own > cap then
        if others + need > cap then
          out[1] = 0
        else
          grant = need + math.max(math.min(wanted - need, math.floor((cap - others - need) / 2)), 0)
        end
      end
      out[2 + 2 * i] = others + need - 1
      grants[j] = {k, grant, math.max(now, ver + 1)}
    end
  end
end

local g = 0
if out[1] == 1 and want > 0 then
  g = 1
  if want > 1 then g = 1 + math.min(want - 1, math.floor((avail - 1) / 2)) end
  for i = 1, n do
    local a = 4 * i - 1
    local tatNew = now + useds[i] + tonumber(ARGV[a]) * tonumber(ARGV[a + 2]) * g
    redis.call('SET', KEYS[i], tatNew, 'PX', math.ceil((tatNew - now) / 1000))
  end
end
out[2] = g
local o = 2 + 2 * n
for jj = 1, j do
  local gr = grants[jj]
  if gr and out[1] == 1 then
    redis.call('HSET', KEYS[gr[1]], replica, string.format('%d %d %d', gr[2], now + lease, gr[3]))
    if redis.call('PTTL', KEYS[gr[1]]) < math.ceil(lease / 1000) then
      redis.call('PEXPIRE', KEYS[gr[1]], math.ceil(lease / 1000))
    end
    out[o + 1], out[o + 2], out[o + 3] = gr[2], gr[3], lease
  else
    out[o + 1], out[o + 2], out[o + 3] = 0, 0, 0
  end
  o = o + 3
end
return out
