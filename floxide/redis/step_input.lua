-- step_input.lua: a worker is about to run a claimed item; start the run if it is Pending.
--
-- KEYS[1] run   run hash     KEYS[2] items   item states     KEYS[3] done   committed item ids
-- ARGV: item_id, node, attempt, now (ISO)
-- Returns {status or false, deadline or false, interrupt flag, context ready flag}.
-- An item already committed (a re-delivery) keeps its Completed state. A run that is gone
-- (deleted, or expired) or not Pending/Running (Cancelled included) is left as it is.

local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {false, false, '0', '0'} end
if status == 'Pending' then
  redis.call('HSET', KEYS[1], 'status', 'Running', 'started_at', ARGV[4])
  status = 'Running'
end
if status == 'Running' and redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 0 then
  redis.call('HSET', KEYS[2], ARGV[1],
    cjson.encode({item_id = ARGV[1], node = ARGV[2], status = 'Running', attempt = tonumber(ARGV[3])}))
end
return {status, redis.call('HGET', KEYS[1], 'deadline'), redis.call('HGET', KEYS[1], 'interrupt') or '0',
  redis.call('HGET', KEYS[1], 'ctx_ready') or '0'}
