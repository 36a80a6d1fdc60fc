-- start.lua: create a run and enqueue its first item, once per run id.
--
-- KEYS[1] run     run hash        KEYS[2] stream    work stream
-- KEYS[3] frames  frame counts    KEYS[4] items     item states
-- KEYS[5] metrics counters        KEYS[6] runs      index: zset run_id by creation time (ms)
-- KEYS[7] ctx     context hash    KEYS[8 ..] context keys of list/set/dict fields
--
-- ARGV: run_id, workflow, item_id, node, item JSON, created (ms), created (ISO), deadline (ISO or ""),
-- context keys (JSON list of the run's list/set/dict context keys, "" when the context is not
-- seeded here: the first worker seeds it with the model's defaults), then context seed ops: P, then per op: kind (set|append|union|update), field,
-- key index (0 for none), n, n values.
-- Returns 1 if the run was created, 0 if it already existed.

if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local pos = 9
local function arg() pos = pos + 1; return ARGV[pos] end
local run_id, workflow, item_id, node, item = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

redis.call('HSET', KEYS[1], 'run_id', run_id, 'workflow', workflow, 'status', 'Pending',
  'created_at', ARGV[7], 'items_total', 1, 'items_done', 0, 'has_output', '0', 'interrupt', '0')
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'deadline', ARGV[8]) end
if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'ctx_keys', ARGV[9], 'ctx_ready', '1') end
redis.call('HSET', KEYS[3], '', 1)
redis.call('ZADD', KEYS[6], ARGV[6], run_id)
for _ = 1, tonumber(arg()) do
  local kind, field, key, n = arg(), arg(), tonumber(arg()), tonumber(arg())
  local values = {}
  for j = 1, n do values[j] = arg() end
  if kind == 'set' then
    redis.call('HSET', KEYS[7], field, values[1])
  elseif kind == 'append' then
    for _, x in ipairs(values) do redis.call('RPUSH', KEYS[key], x) end
  elseif kind == 'union' then
    for _, x in ipairs(values) do redis.call('SADD', KEYS[key], x) end
  elseif kind == 'update' then
    for j = 1, #values, 2 do redis.call('HSET', KEYS[key], values[j], values[j + 1]) end
  end
end
redis.call('XADD', KEYS[2], '*', 'item', item)
redis.call('HSET', KEYS[4], item_id, '{"item_id":"' .. item_id .. '","node":"' .. node .. '","status":"Queued","attempt":1}')
redis.call('HINCRBY', KEYS[5], node .. ':created', 1)
return 1
