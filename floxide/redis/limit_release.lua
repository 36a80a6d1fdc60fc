-- limit_release.lua: give back a step's concurrency slots and wake the longest-waiting item of
-- each limit (it is made due now in the throttled set; workers promote it into the stream).
--
-- KEYS[1] throttled (zset: item JSON by due time, ms), then two keys per concurrency limit:
--   slots (zset: holder token by lease expiry, ms), waiting (zset: item JSON by first wait, ms)
-- ARGV: token (run/item)
-- Returns how many waiting items were woken. Waiting entries no longer throttled (run, or
-- picked up at their due time) are dropped on the way.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local woken = 0
for i = 2, #KEYS, 2 do
  if redis.call('ZREM', KEYS[i], ARGV[1]) == 1 then
    for _ = 1, 20 do
      local head = redis.call('ZPOPMIN', KEYS[i + 1])
      if not head[1] then break end
      if redis.call('ZSCORE', KEYS[1], head[1]) then
        redis.call('ZADD', KEYS[1], 'XX', now, head[1])
        woken = woken + 1
        break
      end
    end
  end
end
return woken
