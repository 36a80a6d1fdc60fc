-- start.lua: create a run and enqueue its first item, once per run id.
-- (Its context is stored by seed_context.lua, in the same transaction or by the first worker.)
--
-- KEYS[1] run     run hash        KEYS[2] stream    work stream
-- KEYS[3] frames  frame counts    KEYS[4] items     item states
-- KEYS[5] metrics counters        KEYS[6] runs      index: zset run_id by creation time (ms)
--
-- ARGV: run_id, workflow, item_id, node, item JSON, created (ms), created (ISO), deadline (ISO or "")
-- Returns 1 if the run was created, 0 if it already existed.

if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local run_id, workflow, item_id, node, item = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

redis.call('HSET', KEYS[1], 'run_id', run_id, 'workflow', workflow, 'status', 'Pending',
  'created_at', ARGV[7], 'items_total', 1, 'items_done', 0, 'has_output', '0', 'interrupt', '0')
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'deadline', ARGV[8]) end
redis.call('HSET', KEYS[3], '', 1)
redis.call('ZADD', KEYS[6], ARGV[6], run_id)
redis.call('XADD', KEYS[2], '*', 'item', item)
redis.call('HSET', KEYS[4], item_id, cjson.encode({item_id = item_id, node = node, status = 'Queued', attempt = 1}))
redis.call('HINCRBY', KEYS[5], node .. ':created', 1)
return 1
