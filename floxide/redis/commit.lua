-- commit.lua: apply one finished step atomically, then acknowledge it.
--
-- KEYS[1]  stream        the workflow's work stream
-- KEYS[2]  run           run hash (status, counters, output, ...)
-- KEYS[3]  done          set of committed item ids (the idempotency marker)
-- KEYS[4]  items         hash item_id -> item state JSON
-- KEYS[5]  frames        hash frame_id -> live count ("" is the run itself)
-- KEYS[6]  fparent       hash frame_id -> parent frame id
-- KEYS[7]  fscope        hash frame_id -> scope JSON of the frame's successors-to-be
-- KEYS[8]  outputs       list of terminal outputs (JSON)
-- KEYS[9]  metrics       hash "<node>:<counter>" -> number
-- KEYS[10] parked        list of items held while the run is paused or failed
-- KEYS[11] ctx           hash context field -> JSON
-- KEYS[12] errors, KEYS[13] failed: only expired with the run
-- KEYS[14] fjoins        hash frame_id -> comma-separated joins that fire when the frame closes
-- KEYS[15 .. 14+F]       inbox hash of each frame of ARGV's frame list, in order
-- KEYS[15+F ..]          context keys of list/set/dict fields, referenced by index from ARGV ops
--
-- ARGV (read in order): group, delivery, run_id, item_id, node, attempt, index, F, frame ids x F
-- (outermost first; the item's own frame is the last unless an opened frame follows),
-- opened ("" for none), item scope JSON, the opened frame's joins (comma-separated), children count,
-- C, (node, item JSON) x C,
-- A, (join node, value JSON) x A, O, output JSON x O, P, ops x P, now (ISO), seconds,
-- ttl seconds, workflow name, consumer ("" for none), state wanted ("1"/"0").
-- An op is: kind, field, key index (into KEYS, 0 for none), n, then n values.
-- Kinds: set, incr, incrf, max, min, append, union, update, delete, cas (expected, value).
--
-- The fence: a step of a run that is gone (deleted, or expired) or Cancelled changes nothing;
-- its entry is only acknowledged (and the hand-off still claims the next entry, whatever run
-- it belongs to).
--
-- Returns "duplicate", "gone", "cancelled", "conflict:<field>", "ok" or "finished". With a
-- consumer (the hand-off), the script also claims the next new entry of the stream for it and
-- returns {result, entry id, item JSON, status, deadline, interrupt}: the last three (what
-- step_input.lua tells) only when the state is wanted and the entry belongs to this run,
-- else {result, entry id, item JSON}, or {result} when the stream has nothing new.

local pos = 0
local function arg() pos = pos + 1; return ARGV[pos] end

local group, delivery, run_id, item_id, node = arg(), arg(), arg(), arg(), arg()
local attempt, index = arg(), tonumber(arg())
local nframes = tonumber(arg())
local frames, inbox = {}, {}
for i = 1, nframes do
  local f = arg()
  frames[i] = f
  inbox[f] = KEYS[14 + i]
end
local opened = arg()
local item_scope = arg()
local frame_joins = arg()
local children = tonumber(arg())
local succ = {}
for i = 1, tonumber(arg()) do succ[i] = {arg(), arg()} end
local arrivals = {}
for i = 1, tonumber(arg()) do arrivals[i] = {arg(), arg()} end
local outputs = {}
for i = 1, tonumber(arg()) do outputs[i] = arg() end
local ops = {}
for i = 1, tonumber(arg()) do
  local op = {kind = arg(), field = arg(), key = tonumber(arg()), values = {}}
  for j = 1, tonumber(arg()) do op.values[j] = arg() end
  ops[i] = op
end
local now, seconds, ttl, workflow = arg(), arg(), tonumber(arg()), arg()
local consumer, want_state = arg() or '', arg() or '0'

-- The hand-off: claim the next new entry for the consumer that just committed (its next step
-- then needs no XREADGROUP of its own, and for the same run no step_input.lua either).
local function handoff(result)
  if consumer == '' then return result end
  local reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1, 'STREAMS', KEYS[1], '>')
  if not reply then return {result} end
  local entry = reply[1][2][1]
  local json = nil
  for i = 1, #entry[2], 2 do
    if entry[2][i] == 'item' then json = entry[2][i + 1] end
  end
  if json == nil then return {result} end
  if want_state ~= '1' or string.match(json, '"run_id":"([^"]*)"') ~= run_id then
    return {result, entry[1], json}
  end
  local status = redis.call('HGET', KEYS[2], 'status')
  local next_id = string.match(json, '"item_id":"([^"]*)"')
  if status == 'Running' and redis.call('SISMEMBER', KEYS[3], next_id) == 0 then
    redis.call('HSET', KEYS[4], next_id, '{"item_id":"' .. next_id .. '","node":"' ..
      string.match(json, '"node":"([^"]*)"') .. '","status":"Running","attempt":' ..
      string.match(json, '"attempt":(%d+)') .. '}')
  end
  return {result, entry[1], json, status or false, redis.call('HGET', KEYS[2], 'deadline') or false,
    redis.call('HGET', KEYS[2], 'interrupt') or '0'}
end

if redis.call('SISMEMBER', KEYS[3], item_id) == 1 then
  redis.call('XACK', KEYS[1], group, delivery)
  return handoff('duplicate')
end
local status = redis.call('HGET', KEYS[2], 'status')
if not status or status == 'Cancelled' then
  redis.call('XACK', KEYS[1], group, delivery)
  return handoff(status and 'cancelled' or 'gone')
end
for _, op in ipairs(ops) do
  if op.kind == 'cas' then
    local current = redis.call('HGET', KEYS[11], op.field) or ''
    if current ~= op.values[1] then return 'conflict:' .. op.field end
  end
end

redis.call('SADD', KEYS[3], item_id)
redis.call('XACK', KEYS[1], group, delivery)

-- context deltas
for _, op in ipairs(ops) do
  local k, v = op.kind, op.values
  if k == 'set' or k == 'cas' then
    redis.call('HSET', KEYS[11], op.field, v[#v])
  elseif k == 'incr' then
    redis.call('HINCRBY', KEYS[11], op.field, v[1])
  elseif k == 'incrf' then
    redis.call('HINCRBYFLOAT', KEYS[11], op.field, v[1])
  elseif k == 'max' or k == 'min' then
    local cur = tonumber(redis.call('HGET', KEYS[11], op.field) or '')
    local new = tonumber(v[1])
    if cur == nil or (k == 'max' and new > cur) or (k == 'min' and new < cur) then
      redis.call('HSET', KEYS[11], op.field, v[1])
    end
  elseif k == 'append' then
    for _, x in ipairs(v) do redis.call('RPUSH', KEYS[op.key], x) end
  elseif k == 'union' then
    for _, x in ipairs(v) do redis.call('SADD', KEYS[op.key], x) end
  elseif k == 'update' then
    for j = 1, #v, 2 do redis.call('HSET', KEYS[op.key], v[j], v[j + 1]) end
  elseif k == 'delete' then
    for _, x in ipairs(v) do redis.call('HDEL', KEYS[op.key], x) end
  end
end

-- metrics, outputs, this item's state
redis.call('HINCRBY', KEYS[9], node .. ':completed', 1)
redis.call('HINCRBYFLOAT', KEYS[9], node .. ':seconds', seconds)
for _, out in ipairs(outputs) do
  redis.call('RPUSH', KEYS[8], out)
  if redis.call('HSETNX', KEYS[2], 'output', out) == 1 then redis.call('HSET', KEYS[2], 'has_output', '1') end
end
redis.call('HSET', KEYS[4], item_id,
  '{"item_id":"' .. item_id .. '","node":"' .. node .. '","status":"Completed","attempt":' .. attempt .. '}')

-- frames and joins
local frame = frames[#frames]
if opened ~= '' then frame = frames[#frames - 1] end
local pad = function(n) return string.format('%010d', n) end
if opened ~= '' then
  redis.call('HSET', KEYS[5], opened, children)
  redis.call('HSET', KEYS[6], opened, frame)
  redis.call('HSET', KEYS[7], opened, item_scope)
  if frame_joins ~= '' then redis.call('HSET', KEYS[14], opened, frame_joins) end
  redis.call('HINCRBY', KEYS[5], frame, 1)
  for i, a in ipairs(arrivals) do
    redis.call('HSET', inbox[opened], a[1] .. '\31' .. pad(i - 1) .. '\31' .. item_id, a[2])
  end
else
  redis.call('HINCRBY', KEYS[5], frame, children)
  for _, a in ipairs(arrivals) do
    redis.call('HSET', inbox[frame], a[1] .. '\31' .. pad(index) .. '\31' .. item_id, a[2])
  end
end
redis.call('HINCRBY', KEYS[5], frame, -1)

local fired = {}
local run_done = false
local function close(f)
  while true do
    local entries = redis.call('HGETALL', inbox[f])
    redis.call('DEL', inbox[f])
    local names, order = {}, {}
    for i = 1, #entries, 2 do
      local name = string.match(entries[i], '^([^\31]*)\31')
      if not order[name] then order[name] = {}; names[#names + 1] = name end
      table.insert(order[name], {entries[i], entries[i + 1]})
    end
    if f ~= '' then
      for name in string.gmatch(redis.call('HGET', KEYS[14], f) or '', '[^,]+') do
        if not order[name] then order[name] = {}; names[#names + 1] = name end
      end
      redis.call('HDEL', KEYS[14], f)
    end
    table.sort(names)
    local parent_scope = '[]'
    if f ~= '' then parent_scope = redis.call('HGET', KEYS[7], f) end
    for _, name in ipairs(names) do
      local list = order[name]
      table.sort(list, function(a, b) return a[1] < b[1] end)
      local values = {}
      for i, e in ipairs(list) do values[i] = e[2] end
      fired[#fired + 1] = {name, '{"run_id":"' .. run_id .. '","item_id":"j:' .. item_id .. ':' .. name ..
        '","node":"' .. name .. '","attempt":1,"scope":' .. parent_scope .. ',"payload":[' ..
        table.concat(values, ',') .. ']}'}
    end
    if f == '' then
      redis.call('HSET', KEYS[5], '', #names)
      run_done = (#names == 0)
      return
    end
    local parent = redis.call('HGET', KEYS[6], f)
    redis.call('HDEL', KEYS[5], f)
    redis.call('HDEL', KEYS[6], f)
    redis.call('HDEL', KEYS[7], f)
    if redis.call('HINCRBY', KEYS[5], parent, #names - 1) ~= 0 then return end
    f = parent
  end
end
if opened ~= '' and children == 0 then close(opened) end
if tonumber(redis.call('HGET', KEYS[5], frame) or '1') == 0 then close(frame) end
for _, s in ipairs(fired) do succ[#succ + 1] = s end

-- successors: queued while the run runs, parked while it is paused or failed, else (Completed) dropped
local active = (status == 'Running' or status == 'Pending')
local held = (status == 'Paused' or status == 'Failed')
for _, s in ipairs(succ) do
  local succ_node, json = s[1], s[2]
  redis.call('HINCRBY', KEYS[9], succ_node .. ':created', 1)
  local id = string.match(json, '"item_id":"([^"]*)"')
  local state = 'Queued'
  if active then
    redis.call('XADD', KEYS[1], '*', 'item', json)
  elseif held then
    redis.call('RPUSH', KEYS[10], json)
    state = 'Parked'
  end
  if active or held then
    redis.call('HSET', KEYS[4], id,
      '{"item_id":"' .. id .. '","node":"' .. succ_node .. '","status":"' .. state .. '","attempt":1}')
  end
end
redis.call('HINCRBY', KEYS[2], 'items_done', 1)
redis.call('HINCRBY', KEYS[2], 'items_total', #succ)

if run_done and (active or status == 'Paused') then
  if redis.call('HGET', KEYS[2], 'has_output') == '1' then
    redis.call('HSET', KEYS[2], 'status', 'Completed', 'finished_at', now)
  else
    redis.call('HSET', KEYS[2], 'status', 'Failed', 'finished_at', now,
      'error', "workflow '" .. workflow .. "' ended without reaching a terminal node")
  end
  for i = 2, #KEYS do redis.call('EXPIRE', KEYS[i], ttl) end
  return handoff('finished')
end
-- a late commit of a run that finished meanwhile (its keys already expire): what it wrote
-- expires with the run hash
local left = redis.call('TTL', KEYS[2])
if left > 0 then
  for i = 3, #KEYS do redis.call('EXPIRE', KEYS[i], left) end
end
return handoff('ok')
