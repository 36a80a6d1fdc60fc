-- seed_context.lua: store a run's initial context, once (runs seeded without one, e.g. by the operator).
--
-- KEYS[1] run  KEYS[2] ctx  KEYS[3 ..] context keys of list/set/dict fields
-- ARGV: context keys (JSON list), then ops: P, per op: kind (set|append|union|update), field, key index, n, n values.
-- Returns 1 if the context was stored now, 0 if it already was, "gone" (no run hash: the run was
-- deleted or expired) or "cancelled": then nothing is stored. start.lua creates the run hash in
-- the same transaction before a context given at the start is seeded, so a run always has one
-- when it is seeded. A context stored late (the run finished meanwhile) expires with the run hash.

local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'gone' end
if status == 'Cancelled' then return 'cancelled' end
if redis.call('HGET', KEYS[1], 'ctx_ready') == '1' then return 0 end
local pos = 1
local function arg() pos = pos + 1; return ARGV[pos] end
for _ = 1, tonumber(arg()) do
  local kind, field, key, n = arg(), arg(), tonumber(arg()), tonumber(arg())
  local values = {}
  for j = 1, n do values[j] = arg() end
  if kind == 'set' then
    redis.call('HSET', KEYS[2], field, values[1])
  elseif kind == 'append' then
    for _, x in ipairs(values) do redis.call('RPUSH', KEYS[key], x) end
  elseif kind == 'union' then
    for _, x in ipairs(values) do redis.call('SADD', KEYS[key], x) end
  elseif kind == 'update' then
    for j = 1, #values, 2 do redis.call('HSET', KEYS[key], values[j], values[j + 1]) end
  end
end
redis.call('HSET', KEYS[1], 'ctx_keys', ARGV[1], 'ctx_ready', '1')
local left = redis.call('TTL', KEYS[1])
if left > 0 then
  for i = 2, #KEYS do redis.call('EXPIRE', KEYS[i], left) end
end
return 1
