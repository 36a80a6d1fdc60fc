-- limit_release.lua: give back a step's concurrency slots and wake the longest-waiting item of
-- each limit (it is made due now in its throttled set; workers promote it into its stream).
--
-- KEYS[1 .. T] the throttled sets (zset: item JSON by due time, ms) of the priority classes in
-- use, then two keys per concurrency limit:
--   slots (zset: holder token by lease expiry, ms), waiting (zset: item JSON by first wait, ms)
-- ARGV: token (run/item), T
-- Returns how many waiting items were woken. Waiting entries no longer throttled (run, or
-- picked up at their due time) are dropped on the way.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sets = tonumber(ARGV[2])
local woken = 0
for i = sets + 1, #KEYS, 2 do
  if redis.call('ZREM', KEYS[i], ARGV[1]) == 1 then
    for _ = 1, 20 do
      local head = redis.call('ZPOPMIN', KEYS[i + 1])
      if not head[1] then break end
      local found = nil
      for s = 1, sets do
        if redis.call('ZSCORE', KEYS[s], head[1]) then found = KEYS[s] end
      end
      if found then
        redis.call('ZADD', found, 'XX', now, head[1])
        woken = woken + 1
        break
      end
    end
  end
end
return woken
