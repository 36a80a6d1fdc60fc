-- retry.lua: acknowledge a failed attempt and schedule the next one in the delayed queue.
--
-- KEYS[1] stream   KEYS[2] delayed (zset: item JSON by due time, ms)   KEYS[3] items
-- KEYS[4] metrics  KEYS[5] errors (list)                               KEYS[6] done
-- KEYS[7] run: if the run has finished (its keys expire), what this writes expires with it
-- ARGV: group, delivery, due (ms), next item JSON, item_id, node, next attempt, error JSON, max errors kept
-- Returns "duplicate" (the item was committed), "gone" (the run was deleted or expired),
-- "cancelled" (the run was cancelled) or "ok". Only "ok" writes anything but the acknowledgement.

redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if redis.call('SISMEMBER', KEYS[6], ARGV[5]) == 1 then return 'duplicate' end
local status = redis.call('HGET', KEYS[7], 'status')
if not status then return 'gone' end
if status == 'Cancelled' then return 'cancelled' end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[3], ARGV[5],
  cjson.encode({item_id = ARGV[5], node = ARGV[6], status = 'WaitingRetry', attempt = tonumber(ARGV[7])}))
redis.call('HINCRBY', KEYS[4], ARGV[6] .. ':retries', 1)
redis.call('RPUSH', KEYS[5], ARGV[8])
redis.call('LTRIM', KEYS[5], -tonumber(ARGV[9]), -1)
local left = redis.call('TTL', KEYS[7])
if left > 0 then
  for i = 3, 6 do redis.call('EXPIRE', KEYS[i], left) end
end
return 'ok'
