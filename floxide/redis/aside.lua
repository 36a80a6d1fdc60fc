-- aside.lua: acknowledge an item its run cannot take now; park it (keep = "1") or drop it.
--
-- KEYS[1] stream  KEYS[2] parked (list)  KEYS[3] items  KEYS[4] done  KEYS[5] run
-- ARGV: group, delivery, item_id, node, attempt, item JSON, keep
-- A parked item of a finished (Failed) run expires with the run hash.
-- Returns "gone" (the run was deleted or expired) or "cancelled" (the run was cancelled): the
-- item is only acknowledged, even with keep; else "parked" or "dropped".

redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
local status = redis.call('HGET', KEYS[5], 'status')
if not status then return 'gone' end
if status == 'Cancelled' then return 'cancelled' end
if ARGV[7] ~= '1' or redis.call('SISMEMBER', KEYS[4], ARGV[3]) == 1 then return 'dropped' end
redis.call('RPUSH', KEYS[2], ARGV[6])
redis.call('HSET', KEYS[3], ARGV[3],
  cjson.encode({item_id = ARGV[3], node = ARGV[4], status = 'Parked', attempt = tonumber(ARGV[5])}))
local left = redis.call('TTL', KEYS[5])
if left > 0 then
  redis.call('EXPIRE', KEYS[2], left)
  redis.call('EXPIRE', KEYS[3], left)
end
return 'parked'
