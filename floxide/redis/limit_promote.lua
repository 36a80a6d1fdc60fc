-- limit_promote.lua: move throttled items whose time has come into the work stream (Redis' clock,
-- as limit_acquire.lua scores them).
--
-- KEYS[1] throttled (zset: item JSON by due time, ms)   KEYS[2] stream
-- ARGV: limit
-- Returns the number of items moved.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, item in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'item', item)
  redis.call('ZREM', KEYS[1], item)
end
return #due
