-- promote.lua: move delayed items whose time has come into the work streams, and say when to
-- look again.
--
-- KEYS[1] queued (zset of runs waiting for a run-limit slot)
-- KEYS[2] priorities (set of the priority classes runs were submitted with)
-- then per priority class: delayed (zset: item JSON by due time, ms), stream
-- ARGV: now (ms), limit (items moved per class at most)
-- Returns {moved, ms until the earliest item still delayed is due (-1: none), queued runs,
-- the priorities set's members}.

local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local moved, wait = 0, -1
for k = 3, #KEYS, 2 do
  local due = redis.call('ZRANGEBYSCORE', KEYS[k], '-inf', now, 'LIMIT', 0, limit)
  for _, item in ipairs(due) do
    redis.call('XADD', KEYS[k + 1], '*', 'item', item)
    redis.call('ZREM', KEYS[k], item)
  end
  moved = moved + #due
  local next = redis.call('ZRANGE', KEYS[k], 0, 0, 'WITHSCORES')
  if next[2] then
    local ms = math.max(tonumber(next[2]) - now, 0)
    if wait < 0 or ms < wait then wait = ms end
  end
end
return {moved, math.floor(wait), redis.call('ZCARD', KEYS[1]), redis.call('SMEMBERS', KEYS[2])}
