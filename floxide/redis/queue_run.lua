-- queue_run.lua: create a run that waits for a slot under the workflow's run limit, once per run id.
-- (Its context is stored by seed_context.lua in the same transaction; admit.lua starts it.)
--
-- KEYS[1] run     run hash       KEYS[2] queued  zset run_id by submission order
-- KEYS[3] qseq    order counter  KEYS[4] runs    index: zset run_id by creation time (ms)
--
-- ARGV: run_id, workflow, item_id, node, item JSON, created (ms), created (ISO), deadline (ISO or ""),
--       the name of the stream its first item goes to when it starts (its priority class's)
-- Returns 1 if the run was created (Queued), 0 if it already existed.

if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local run_id = ARGV[1]
redis.call('HSET', KEYS[1], 'run_id', run_id, 'workflow', ARGV[2], 'status', 'Queued',
  'created_at', ARGV[7], 'items_total', 0, 'items_done', 0, 'has_output', '0', 'interrupt', '0',
  'first_item_id', ARGV[3], 'first_node', ARGV[4], 'first_item', ARGV[5], 'first_stream', ARGV[9])
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'deadline', ARGV[8]) end
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), run_id)
redis.call('ZADD', KEYS[4], ARGV[6], run_id)
return 1
