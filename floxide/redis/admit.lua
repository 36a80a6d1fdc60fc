-- admit.lua: start queued runs, in submission order, while fewer than the limit are active.
--
-- KEYS[1] queued  zset run_id by submission order     KEYS[2] active  set of admitted run ids
-- KEYS[3] limits  hash (max_active_runs)              KEYS[4] stream  work stream (normal class)
-- KEYS[5 .. 4+A]  run hashes of the A runs in the active set (as the caller read it)
-- then 5 keys per candidate (the first C queued runs, as the caller read them):
--                 run hash, frames, items, metrics, the stream of its priority class
--                 (the run's ``first_stream``; KEYS[4] for a run that has none)
--
-- ARGV: A, C, the A active run ids, the C candidate run ids
-- Returns 'retry' when the active set or the head of the queue changed since the caller read
-- them (it reads again), else the list of the run ids started now.
--
-- An active run holds its slot until it is finished (Completed, Failed, Cancelled) or gone;
-- such runs leave the active set here. A candidate that is no longer Queued (cancelled, or
-- deleted) leaves the queue without a slot, also behind runs that still wait (they keep their
-- order: once one waits, no later one starts). A started run becomes Pending with its first item
-- in the stream, exactly as start.lua starts a run without a limit.

local a, c = tonumber(ARGV[1]), tonumber(ARGV[2])
if redis.call('SCARD', KEYS[2]) ~= a then return 'retry' end
for i = 1, a do
  if redis.call('SISMEMBER', KEYS[2], ARGV[2 + i]) == 0 then return 'retry' end
end
local head = redis.call('ZRANGE', KEYS[1], 0, c - 1)
if #head ~= c then return 'retry' end
for i = 1, c do
  if head[i] ~= ARGV[2 + a + i] then return 'retry' end
end

local count = a
for i = 1, a do
  local status = redis.call('HGET', KEYS[4 + i], 'status')
  if (not status) or status == 'Completed' or status == 'Failed' or status == 'Cancelled' then
    redis.call('SREM', KEYS[2], ARGV[2 + i])
    count = count - 1
  end
end
local limit = tonumber(redis.call('HGET', KEYS[3], 'max_active_runs') or '')

local started = {}
for i = 1, c do
  local base = 4 + a + (i - 1) * 5
  local run, frames, items, metrics = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4]
  local stream = KEYS[base + 5]
  local run_id = ARGV[2 + a + i]
  local queued = redis.call('HGET', run, 'status') == 'Queued'
  if not queued then
    redis.call('ZREM', KEYS[1], run_id)  -- cancelled, failed or deleted while it waited: no slot
  elseif not limit or count < limit then
    redis.call('ZREM', KEYS[1], run_id)
    local fields = redis.call('HMGET', run, 'first_item_id', 'first_node', 'first_item')
    local item_id, node, item = fields[1], fields[2], fields[3]
    redis.call('HSET', run, 'status', 'Pending', 'items_total', 1)
    redis.call('HDEL', run, 'first_item')
    redis.call('HSET', frames, '', 1)
    redis.call('XADD', stream, '*', 'item', item)
    redis.call('HSET', items, item_id, cjson.encode({item_id = item_id, node = node, status = 'Queued', attempt = 1}))
    redis.call('HINCRBY', metrics, node .. ':created', 1)
    redis.call('SADD', KEYS[2], run_id)
    count = count + 1
    started[#started + 1] = run_id
  end
end
return started
