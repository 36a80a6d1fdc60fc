-- promote.lua: move delayed items whose time has come into the work stream.
--
-- KEYS[1] delayed (zset: item JSON by due time, ms)   KEYS[2] stream
-- ARGV: now (ms), limit
-- Returns the number of items moved.

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, item in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'item', item)
  redis.call('ZREM', KEYS[1], item)
end
return #due
