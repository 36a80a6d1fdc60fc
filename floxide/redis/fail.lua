-- fail.lua: an item failed for good: record and dead-letter it, keep it for a retry, fail the run.
--
-- KEYS[1] stream  KEYS[2] run  KEYS[3] items  KEYS[4] metrics  KEYS[5] errors  KEYS[6] failed (hash)
-- KEYS[7] dead (dead-letter stream)  KEYS[8] done  KEYS[9 ..] every key of the run (expired with it;
-- if the run had finished already, they expire with its run hash)
-- ARGV: group, delivery, item_id, node, attempt, item JSON (attempt reset to 1), error JSON,
--       run error message, now (ISO), max errors kept, ttl seconds, dead-letter maxlen, run_id
-- Returns "duplicate" (the item was committed), "gone" (the run was deleted or expired),
-- "cancelled" (the run was cancelled) or "ok". Only "ok" writes anything but the acknowledgement.

redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if redis.call('SISMEMBER', KEYS[8], ARGV[3]) == 1 then return 'duplicate' end
local status = redis.call('HGET', KEYS[2], 'status')
if not status then return 'gone' end
if status == 'Cancelled' then return 'cancelled' end
redis.call('RPUSH', KEYS[5], ARGV[7])
redis.call('LTRIM', KEYS[5], -tonumber(ARGV[10]), -1)
redis.call('HSET', KEYS[6], ARGV[3], ARGV[6])
redis.call('HINCRBY', KEYS[4], ARGV[4] .. ':failed', 1)
redis.call('HSET', KEYS[3], ARGV[3],
  cjson.encode({item_id = ARGV[3], node = ARGV[4], status = 'Failed', attempt = tonumber(ARGV[5])}))
redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[12], '*', 'run', ARGV[13], 'item', ARGV[6], 'error', ARGV[7])
if status == 'Running' or status == 'Pending' or status == 'Paused' then
  redis.call('HSET', KEYS[2], 'status', 'Failed', 'finished_at', ARGV[9], 'error', ARGV[8])
  for i = 9, #KEYS do redis.call('EXPIRE', KEYS[i], tonumber(ARGV[11])) end
else
  local left = redis.call('TTL', KEYS[2])
  if left > 0 then
    for i = 9, #KEYS do redis.call('EXPIRE', KEYS[i], left) end
  end
end
return 'ok'
