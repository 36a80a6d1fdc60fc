-- status.lua: move a run to another status, if that is a legal move, with its side effects.
--
-- KEYS[1] run  KEYS[2] stream  KEYS[3] parked (list)  KEYS[4] failed (hash)  KEYS[5] items
-- KEYS[6] metrics  KEYS[7] control (the workflow's stream of interrupts, read by its workers)
-- KEYS[8 ..] every key of the run (expired when it finishes, kept while it runs)
-- ARGV: target, reason ("" for none), interrupt ("1"/"0"), now (ISO), ttl seconds,
--       deadline (ISO) a retried run gets ("" for none: a retry clears the old deadline)
-- Returns the status the run is in afterwards, or false for an unknown run.

local moves = {
  Queued = {Failed = 1, Cancelled = 1},
  Pending = {Running = 1, Paused = 1, Failed = 1, Cancelled = 1, Completed = 1},
  Running = {Paused = 1, Completed = 1, Failed = 1, Cancelled = 1},
  Paused = {Running = 1, Completed = 1, Failed = 1, Cancelled = 1},
  Failed = {Running = 1, Cancelled = 1},
  Completed = {},
  Cancelled = {},
}
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return false end
local target = ARGV[1]
if not moves[current][target] then return current end

redis.call('HSET', KEYS[1], 'status', target)
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[2]) end
local finished = (target == 'Completed' or target == 'Failed' or target == 'Cancelled')
if finished then
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[4], 'interrupt', ARGV[3])
  for i = 8, #KEYS do redis.call('EXPIRE', KEYS[i], tonumber(ARGV[5])) end
end
if target == 'Cancelled' then
  redis.call('DEL', KEYS[3])
end
if finished and ARGV[3] == '1' then
  -- tell the workers at once: those running a step of the run interrupt it (they also poll)
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', 1000, '*', 'run', redis.call('HGET', KEYS[1], 'run_id') or '',
    'status', target)
end
if target == 'Running' then
  if current == 'Failed' then
    redis.call('HDEL', KEYS[1], 'error', 'finished_at', 'deadline')
    redis.call('HSET', KEYS[1], 'interrupt', '0')
    if ARGV[6] and ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'deadline', ARGV[6]) end
    local failed = redis.call('HGETALL', KEYS[4])
    for i = 2, #failed, 2 do
      redis.call('RPUSH', KEYS[3], failed[i])
      redis.call('HINCRBY', KEYS[6], cjson.decode(failed[i]).node .. ':failed', -1)
    end
    redis.call('DEL', KEYS[4])
    for i = 8, #KEYS do redis.call('PERSIST', KEYS[i]) end
  end
  local parked = redis.call('LRANGE', KEYS[3], 0, -1)
  for _, item in ipairs(parked) do
    redis.call('XADD', KEYS[2], '*', 'item', item)
    local decoded = cjson.decode(item)
    redis.call('HSET', KEYS[5], decoded.item_id,
      cjson.encode({item_id = decoded.item_id, node = decoded.node, status = 'Queued', attempt = decoded.attempt}))
  end
  redis.call('DEL', KEYS[3])
end
return target
