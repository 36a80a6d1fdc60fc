-- limit_acquire.lua: take a slot of every concurrency limit and a token of every rate limit of a
-- claimed item, all or none; refused, acknowledge the item and set it aside (throttled).
-- Times come from Redis' clock (TIME), so workers' clocks do not matter.
--
-- KEYS[1] stream   KEYS[2] throttled (zset: item JSON by due time, ms)   KEYS[3] run hash
-- KEYS[4] items    KEYS[5] metrics    KEYS[6] done    KEYS[7] limit stats (hash)
-- KEYS[8] limits index (zset), then two keys per limit:
--   concurrency: slots (zset: holder token by lease expiry, ms), waiting (zset: item JSON by first wait, ms)
--   rate:        bucket (hash: tokens, ts ms),                      queue (zset: holder token by due time, ms)
-- ARGV: group, delivery, token (run/item), item JSON, lease (ms), item_id, node, attempt,
--       number of limits, then per limit: kind ("c" or "r"), ident, max or rate (per s), burst ("" for c),
--       definition (JSON, kept for status)
-- Returns {"ok"}, {"throttled", wait ms, "<kind> <ident>"} (the item is acknowledged and due again
-- after the wait, sooner if a slot is released), {"duplicate"} (committed already: acknowledged),
-- or {"gone"} / {"cancelled"} (the fence: only acknowledged).

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local token, raw, lease = ARGV[3], ARGV[4], tonumber(ARGV[5])
local n = tonumber(ARGV[9])
local due, blocked = 0, nil
local waits = {}
local tokens = {}

for i = 1, n do
  local a = 9 + (i - 1) * 5
  local kind, ident, x, burst = ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local k1, k2 = KEYS[8 + 2 * i - 1], KEYS[8 + 2 * i]
  redis.call('ZADD', KEYS[8], now, kind .. ':' .. ident)
  redis.call('HSET', KEYS[7], kind .. ':' .. ident .. ':def', ARGV[a + 5])
  local wait = nil
  if kind == 'c' then
    redis.call('ZREMRANGEBYSCORE', k1, '-inf', now)
    if not redis.call('ZSCORE', k1, token) and redis.call('ZCARD', k1) >= x then
      local first = redis.call('ZRANGE', k1, 0, 0, 'WITHSCORES')
      wait = math.max(tonumber(first[2]) - now, 1)
    end
  else
    local bucket = redis.call('HMGET', k1, 'tokens', 'ts')
    local have = tonumber(bucket[1]) or burst
    local since = tonumber(bucket[2]) or now
    have = math.min(burst, have + math.max(now - since, 0) * x / 1000)
    tokens[i] = have
    redis.call('ZREM', k2, token)
    redis.call('ZREMRANGEBYSCORE', k2, '-inf', now - 1000)
    if have < 1 then
      local ahead = redis.call('ZCOUNT', k2, now, '+inf')
      wait = math.max(math.ceil((ahead + 1 - have) * 1000 / x), 1)
    end
  end
  if wait then
    waits[#waits + 1] = i
    if wait > due then due, blocked = wait, kind .. ' ' .. ident end
  end
end

if #waits == 0 then
  for i = 1, n do
    local a = 9 + (i - 1) * 5
    local kind, ident, x = ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
    local k1, k2 = KEYS[8 + 2 * i - 1], KEYS[8 + 2 * i]
    if kind == 'c' then
      redis.call('ZADD', k1, now + lease, token)
      redis.call('ZREM', k2, raw)
    else
      redis.call('HSET', k1, 'tokens', tostring(tokens[i] - 1), 'ts', now)
      redis.call('PEXPIRE', k1, math.ceil(tonumber(ARGV[a + 4]) * 1000 / x) + 60000)
    end
    redis.call('HINCRBY', KEYS[7], kind .. ':' .. ident .. ':granted', 1)
  end
  return {'ok'}
end

redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if redis.call('SISMEMBER', KEYS[6], ARGV[6]) == 1 then return {'duplicate'} end
local status = redis.call('HGET', KEYS[3], 'status')
if not status then return {'gone'} end
if status == 'Cancelled' then return {'cancelled'} end
redis.call('ZADD', KEYS[2], now + due, raw)
for _, i in ipairs(waits) do
  local a = 9 + (i - 1) * 5
  local kind, ident = ARGV[a + 1], ARGV[a + 2]
  local k2 = KEYS[8 + 2 * i]
  if kind == 'c' then
    redis.call('ZADD', k2, 'NX', now, raw)
    redis.call('PEXPIRE', k2, 86400000)
  else
    redis.call('ZADD', k2, now + due, token)
    redis.call('PEXPIRE', k2, due + 60000)
  end
  redis.call('HINCRBY', KEYS[7], kind .. ':' .. ident .. ':throttled', 1)
end
redis.call('HSET', KEYS[4], ARGV[6],
  '{"item_id":"' .. ARGV[6] .. '","node":"' .. ARGV[7] .. '","status":"Throttled","attempt":' .. ARGV[8] .. '}')
redis.call('HINCRBY', KEYS[5], ARGV[7] .. ':throttled', 1)
return {'throttled', due, blocked}
