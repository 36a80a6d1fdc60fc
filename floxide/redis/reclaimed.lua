-- reclaimed.lua: count an item taken over from a worker that went silent holding it (a crash).
--
-- KEYS[1] run  KEYS[2] done  KEYS[3] metrics  KEYS[4] errors
-- ARGV: item_id, node, error JSON, max errors kept
-- Returns "gone" (the run was deleted or expired) or "cancelled" (the fence), "duplicate" (the
-- item was committed: nothing to count), else "ok": "<node>:reclaimed" + 1 and the error kept.
-- If the run has finished (its keys expire), what this writes expires with its run hash.

local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'gone' end
if status == 'Cancelled' then return 'cancelled' end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 'duplicate' end
redis.call('HINCRBY', KEYS[3], ARGV[2] .. ':reclaimed', 1)
redis.call('RPUSH', KEYS[4], ARGV[3])
redis.call('LTRIM', KEYS[4], -tonumber(ARGV[4]), -1)
local left = redis.call('TTL', KEYS[1])
if left > 0 then
  for i = 3, 4 do redis.call('EXPIRE', KEYS[i], left) end
end
return 'ok'
