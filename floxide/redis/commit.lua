-- commit.lua: apply a group of finished steps of one workflow atomically, acknowledge them, and
-- (the hand-off) claim the next new entries of the stream for the worker that committed them.
--
-- KEYS[1]      stream     the workflow's work stream
-- KEYS[2 ..]   the keys of each run of the group, in one block per run starting at the run's
--              index k (ARGV's run list): k run hash, k+1 done (committed item ids), k+2 items
--              (item id -> state JSON), k+3 frames (frame id -> live count, "" is the run itself),
--              k+4 fparent (frame id -> parent), k+5 fscope (frame id -> scope JSON of its
--              successors-to-be), k+6 outputs (list of terminal outputs), k+7 metrics
--              ("<node>:<counter>" -> number), k+8 parked (items held while the run is paused or
--              failed), k+9 ctx (context field -> JSON), k+10 errors and k+11 failed (only expired
--              with the run), k+12 fjoins (frame id -> comma-separated joins that fire when the
--              frame closes)
-- KEYS[...]    then the join inbox of every frame the group's steps touch and the runs' context
--              keys of list/set/dict fields, each run listing the indexes of its own (x)
--
-- ARGV[1]: one JSON document (cjson), so that the client encodes one argument, not ~50; ARGV[2 ..]:
-- the item JSON of every successor, in the order of the steps and of each step's successors (as
-- arguments of their own they are neither escaped into the document nor decoded from it):
--   {g: group, now: ISO time, ttl: seconds, wf: workflow name,
--    c: consumer of the hand-off ("" for none), n: entries to claim for it,
--    st: also tell the state of a claimed entry's run when that run is in the group (bool),
--    runs: [{id: run id, k: index of its run hash, x: [indexes of its other keys],
--           ib: {frame id: inbox key index}, cx: [[kind, key index]] the context's fields kept
--           in keys of their own (list, set or map), only when the run has a context model}],
--    s: [step]}
--   step: {r: index in runs, d: delivery (entry id), i: item id, nd: node, a: attempt,
--    x: the item's index in its frame, f: the item's frame ("" for the run), o: the frame the step
--    opens ("" for none), sc: the opened frame's scope JSON, j: the opened frame's joins
--    (comma-separated), ch: children count, su: [[node, item id]] successors,
--    ar: [[join node, value JSON]] arrivals, ou: [output JSON], t: seconds (a number),
--    op: [[kind, field, key index (0 for none), [values]]] context deltas, tc: the step span's
--    trace context (an object of W3C headers; a join the step fires carries it as its "trace")};
--    the client leaves out f, x, o, sc, j, ch, su, ar, ou, op and tc when they are empty ("", 0,
--    [] or no tracing)
--   Kinds: set, incr, incrf, max, min, append, union, update, delete, cas (expected, value).
--
-- Each step, in order: a step whose item is committed already (a re-delivery) is only
-- acknowledged ("duplicate"); the fence: a step of a run that is gone (deleted, or expired) or
-- Cancelled writes nothing but its acknowledgement ("gone", "cancelled"); a step whose
-- compare-and-set op finds another value is not applied, not acknowledged ("conflict:<field>");
-- else it is applied ("ok"). Writes the group's steps share are made once: one XACK, per run one
-- SADD, one HSET of item states, one HINCRBY per counter, one HSET per join inbox, one HINCRBY
-- per frame (a frame's count only changes by the net of its steps, which reaches 0 exactly when
-- its last unit ends, whatever the order).
--
-- Returns {{result per step}, {context...}, claimed entry...}: an entry is {entry id, item JSON}
-- or, when the state is wanted and its run is in the group (with a context model: and its context
-- is stored), {entry id, item JSON, status, deadline, interrupt}; then, for a run with a context
-- model, the context read after the group's writes is {run id, HGETALL of ctx, one reply per cx}.

local doc = cjson.decode(ARGV[1])
local stream, group = KEYS[1], doc.g
local runs, steps = doc.runs, doc.s
local by_id = {}

-- an item state's JSON: spliced when the id and the node need no escaping (the usual case)
local plain = {}  -- node -> whether its name needs no escaping
local function state(id, node, status, attempt)
  local clean = plain[node]
  if clean == nil then
    clean = not string.find(node, '[%c"\\]')
    plain[node] = clean
  end
  if not clean or string.find(id, '[%c"\\]') then
    return cjson.encode({item_id = id, node = node, status = status, attempt = attempt})
  end
  return '{"item_id":"' .. id .. '","node":"' .. node .. '","status":"' .. status .. '","attempt":' ..
    string.format('%d', attempt) .. '}'
end
local function add(tbl, key, n) tbl[key] = (tbl[key] or 0) + n end
-- run id, item id, node and attempt of an item's JSON: by one pattern when the JSON starts as a
-- WorkItem writes it and no escape is in them (the usual case), else decoded
local function head(json)
  local run, id, node, attempt = string.match(json,
    '^{"run_id":"([^"\\]*)","item_id":"([^"\\]*)","node":"([^"\\]*)","attempt":(%d+)')
  if run then return run, id, node, tonumber(attempt) end
  local item = cjson.decode(json)
  return item.run_id, item.item_id, item.node, item.attempt
end
local function pad(n) return string.format('%010d', n) end
-- one command for a list of values, in chunks of 1,000 (unpack is bounded by Lua's C stack;
-- 1,000 is even: field/value pairs stay whole)
local function call_all(command, prefix, values)
  for first = 1, #values, 1000 do
    local args = {unpack(prefix)}
    for i = first, math.min(first + 999, #values) do args[#args + 1] = values[i] end
    redis.call(command, unpack(args))
  end
end

for _, run in ipairs(runs) do
  local k = run.k
  run.info, run.done, run.items, run.frames, run.fparent, run.fscope = KEYS[k], KEYS[k + 1], KEYS[k + 2],
    KEYS[k + 3], KEYS[k + 4], KEYS[k + 5]
  run.outputs, run.metrics, run.parked, run.ctx, run.fjoins = KEYS[k + 6], KEYS[k + 7], KEYS[k + 8],
    KEYS[k + 9], KEYS[k + 12]
  run.ids, run.fresh, run.states, run.order = {}, {}, {}, {}
  run.completed, run.created, run.seconds = {}, {}, {}  -- by node (a field name made once per call)
  run.deltas, run.succ, run.closers, run.traces = {}, {}, {}, {}
  run.applied = 0
  by_id[run.id] = run
end
local arg = 1
for _, s in ipairs(steps) do
  local run = runs[s.r]
  run.ids[#run.ids + 1] = s.i
  -- fields left out when empty
  s.f, s.x, s.o, s.sc, s.j, s.ch = s.f or '', s.x or 0, s.o or '', s.sc or '', s.j or '', s.ch or 0
  s.su, s.ar, s.ou, s.op = s.su or {}, s.ar or {}, s.ou or {}, s.op or {}
  for _, su in ipairs(s.su) do  -- {node, item id, item JSON}
    arg = arg + 1
    su[3] = ARGV[arg]
  end
end
for _, run in ipairs(runs) do
  local got = redis.call('HMGET', run.info, 'status', 'deadline', 'interrupt', 'ctx_ready')
  run.status, run.deadline, run.interrupt = got[1], got[2], got[3] or '0'
  run.told = run.status and (not run.cx or got[4] == '1')  -- a claimed entry's state can be told
  run.committed = {}
  local flags = redis.call('SMISMEMBER', run.done, unpack(run.ids))
  for i, id in ipairs(run.ids) do
    if flags[i] == 1 then run.committed[id] = true end
  end
end

local results, acks, inboxes, inbox_order, opened_empty = {}, {}, {}, {}, {}
local function arrive(key, field, value)
  local list = inboxes[key]
  if not list then list = {}; inboxes[key] = list; inbox_order[#inbox_order + 1] = key end
  list[#list + 1] = field
  list[#list + 1] = value
end

local function apply_ops(run, ops)
  for _, op in ipairs(ops) do
    local kind, field, key, v = op[1], op[2], KEYS[op[3]], op[4]
    if kind == 'set' or kind == 'cas' then
      redis.call('HSET', run.ctx, field, v[#v])
    elseif kind == 'incr' then
      redis.call('HINCRBY', run.ctx, field, v[1])
    elseif kind == 'incrf' then
      redis.call('HINCRBYFLOAT', run.ctx, field, v[1])
    elseif kind == 'max' or kind == 'min' then
      local cur = tonumber(redis.call('HGET', run.ctx, field) or '')
      local new = tonumber(v[1])
      if cur == nil or (kind == 'max' and new > cur) or (kind == 'min' and new < cur) then
        redis.call('HSET', run.ctx, field, v[1])
      end
    elseif kind == 'append' then
      call_all('RPUSH', {key}, v)
    elseif kind == 'union' then
      call_all('SADD', {key}, v)
    elseif kind == 'update' then
      call_all('HSET', {key}, v)
    elseif kind == 'delete' then
      call_all('HDEL', {key}, v)
    end
  end
end

local function conflict(run, ops)
  for _, op in ipairs(ops) do
    if op[1] == 'cas' and (redis.call('HGET', run.ctx, op[2]) or '') ~= op[4][1] then return op[2] end
  end
  return nil
end

for n, s in ipairs(steps) do
  local run = runs[s.r]
  local field = conflict(run, s.op)
  if run.committed[s.i] then
    results[n] = 'duplicate'
  elseif not run.status or run.status == 'Cancelled' then
    results[n] = run.status and 'cancelled' or 'gone'
  elseif field then
    results[n] = 'conflict:' .. field
  else
    results[n] = 'ok'
    run.committed[s.i] = true
    run.fresh[#run.fresh + 1] = s.i
    run.applied = run.applied + 1
    apply_ops(run, s.op)
    add(run.completed, s.nd, 1)
    add(run.seconds, s.nd, s.t)
    for _, out in ipairs(s.ou) do
      redis.call('RPUSH', run.outputs, out)
      if redis.call('HSETNX', run.info, 'output', out) == 1 then redis.call('HSET', run.info, 'has_output', '1') end
    end
    run.states[s.i] = state(s.i, s.nd, 'Completed', s.a)
    if s.o ~= '' then
      -- the opened frame counts its children; in the item's frame it replaces the item (net 0)
      redis.call('HSET', run.frames, s.o, s.ch)
      redis.call('HSET', run.fparent, s.o, s.f)
      redis.call('HSET', run.fscope, s.o, s.sc)
      if s.j ~= '' then redis.call('HSET', run.fjoins, s.o, s.j) end
      for i, a in ipairs(s.ar) do arrive(KEYS[run.ib[s.o]], a[1] .. '\31' .. pad(i - 1) .. '\31' .. s.i, a[2]) end
      if s.ch == 0 then opened_empty[#opened_empty + 1] = {run, s.o, s.i, s.tc} end
    else
      if run.deltas[s.f] == nil then run.order[#run.order + 1] = s.f end
      add(run.deltas, s.f, s.ch - 1)
      run.closers[s.f], run.traces[s.f] = s.i, s.tc
      for _, a in ipairs(s.ar) do arrive(KEYS[run.ib[s.f]], a[1] .. '\31' .. pad(s.x) .. '\31' .. s.i, a[2]) end
    end
    for _, su in ipairs(s.su) do run.succ[#run.succ + 1] = su end
  end
  if results[n] == 'ok' or results[n] == 'duplicate' or results[n] == 'cancelled' or results[n] == 'gone' then
    acks[#acks + 1] = s.d
  end
end

-- join inboxes, then frame counts: a frame whose count reaches 0 closes, firing its joins
for _, key in ipairs(inbox_order) do call_all('HSET', {key}, inboxes[key]) end

local function close(run, f, closer, trace)
  while true do
    local inbox = KEYS[run.ib[f]]
    local entries = redis.call('HGETALL', inbox)
    if #entries > 0 then redis.call('DEL', inbox) end
    local names, order, values = {}, {}, {}
    for i = 1, #entries, 2 do
      local name = string.match(entries[i], '^([^\31]*)\31')
      if not order[name] then order[name] = {}; names[#names + 1] = name end
      local list = order[name]
      list[#list + 1] = entries[i]
      values[entries[i]] = entries[i + 1]
    end
    if f ~= '' then
      for name in string.gmatch(redis.call('HGET', run.fjoins, f) or '', '[^,]+') do
        if not order[name] then order[name] = {}; names[#names + 1] = name end
      end
      redis.call('HDEL', run.fjoins, f)
    end
    table.sort(names)
    local parent_scope = '[]'
    if f ~= '' then parent_scope = redis.call('HGET', run.fscope, f) end
    for _, name in ipairs(names) do
      local list = order[name]
      table.sort(list)  -- by field: the arrival's index in its frame, then its item id
      for i, key in ipairs(list) do list[i] = values[key] end
      -- the stored scope and values are JSON already: spliced in, not decoded and encoded again
      local id = 'j:' .. closer .. ':' .. name
      local fields = cjson.encode({run_id = run.id, item_id = id, node = name, attempt = 1, trace = trace})
      run.succ[#run.succ + 1] = {name, id, string.sub(fields, 1, -2) .. ',"scope":' .. parent_scope ..
        ',"payload":[' .. table.concat(list, ',') .. ']}'}
    end
    if f == '' then
      redis.call('HSET', run.frames, '', #names)
      run.ended = (#names == 0)
      return
    end
    local parent = redis.call('HGET', run.fparent, f)
    redis.call('HDEL', run.frames, f)
    redis.call('HDEL', run.fparent, f)
    redis.call('HDEL', run.fscope, f)
    if redis.call('HINCRBY', run.frames, parent, #names - 1) ~= 0 then return end
    f = parent
  end
end

for _, run in ipairs(runs) do
  for _, f in ipairs(run.order) do
    local delta = run.deltas[f]
    -- an unchanged count stays above 0: the group's steps were live in it
    if delta ~= 0 and redis.call('HINCRBY', run.frames, f, delta) == 0 then
      close(run, f, run.closers[f], run.traces[f])
    end
  end
end
for _, o in ipairs(opened_empty) do close(o[1], o[2], o[3], o[4]) end

-- successors: queued while the run runs, parked while it is paused or failed, else (Completed) dropped
local queued = {}
for _, run in ipairs(runs) do
  local active = (run.status == 'Running' or run.status == 'Pending')
  local held = (run.status == 'Paused' or run.status == 'Failed')
  local parked = {}
  for _, s in ipairs(run.succ) do
    local node, id, json = s[1], s[2], s[3]
    add(run.created, node, 1)
    if active then
      redis.call('XADD', stream, '*', 'item', json)
      run.states[id] = state(id, node, 'Queued', 1)
      queued[id] = true
    elseif held then
      parked[#parked + 1] = json
      run.states[id] = state(id, node, 'Parked', 1)
    end
  end
  if #parked > 0 then call_all('RPUSH', {run.parked}, parked) end
  run.active = active
end
if #acks > 0 then call_all('XACK', {stream, group}, acks) end

-- the runs whose last unit ended: Completed (or Failed without a terminal output); all their keys
-- expire; a late commit of a run that finished meanwhile expires what it wrote with the run hash
for _, run in ipairs(runs) do
  if run.ended and (run.active or run.status == 'Paused') then
    if redis.call('HGET', run.info, 'has_output') == '1' then
      redis.call('HSET', run.info, 'status', 'Completed', 'finished_at', doc.now)
      run.status = 'Completed'
    else
      redis.call('HSET', run.info, 'status', 'Failed', 'finished_at', doc.now,
        'error', "workflow '" .. doc.wf .. "' ended without reaching a terminal node")
      run.status = 'Failed'
    end
    run.expire, run.first = doc.ttl, run.k
  elseif run.applied > 0 and (run.status == 'Completed' or run.status == 'Failed') then
    local left = redis.call('TTL', run.info)
    if left > 0 then run.expire, run.first = left, run.k + 1 end
  end
end

-- the hand-off: claim new entries for the consumer that just committed (its next steps then
-- need no XREADGROUP of their own, and for a run of the group no step_input.lua either)
local claimed = {}
if doc.c ~= '' and doc.n > 0 then
  local reply = redis.call('XREADGROUP', 'GROUP', group, doc.c, 'COUNT', doc.n, 'STREAMS', stream, '>')
  for _, entry in ipairs(reply and reply[1][2] or {}) do
    local json = nil
    for i = 1, #entry[2], 2 do
      if entry[2][i] == 'item' then json = entry[2][i + 1] end
    end
    if json ~= nil then
      local run, run_id, id, node, attempt
      if doc.st then
        run_id, id, node, attempt = head(json)
        run = by_id[run_id]
      end
      if run and run.told then
        run.handed = true
        if run.status == 'Running' then
          -- marked Running below, unless committed already (an entry queued by this call is not)
          if queued[id] then run.states[id] = state(id, node, 'Running', attempt)
          else
            run.starting = run.starting or {}
            run.starting[#run.starting + 1] = {id, node, attempt}
          end
        end
        claimed[#claimed + 1] = {entry[1], json, run.status, run.deadline or false, run.interrupt}
      else
        claimed[#claimed + 1] = {entry[1], json}
      end
    end
  end
end
for _, run in ipairs(runs) do
  if run.starting then
    local ids = {}
    for i, start in ipairs(run.starting) do ids[i] = start[1] end
    local flags = redis.call('SMISMEMBER', run.done, unpack(ids))
    for i, start in ipairs(run.starting) do
      if flags[i] == 0 then run.states[start[1]] = state(start[1], start[2], 'Running', start[3]) end
    end
  end
end

-- the group's shared writes: done markers, item states, counters
for _, run in ipairs(runs) do
  if run.applied > 0 then
    call_all('SADD', {run.done}, run.fresh)
    for node, n in pairs(run.completed) do redis.call('HINCRBY', run.metrics, node .. ':completed', n) end
    for node, n in pairs(run.created) do redis.call('HINCRBY', run.metrics, node .. ':created', n) end
    for node, x in pairs(run.seconds) do
      redis.call('HINCRBYFLOAT', run.metrics, node .. ':seconds', string.format('%.17g', x))
    end
    redis.call('HINCRBY', run.info, 'items_done', run.applied)
    if #run.succ > 0 then redis.call('HINCRBY', run.info, 'items_total', #run.succ) end
  end
  local pairs_ = {}
  for id, json in pairs(run.states) do pairs_[#pairs_ + 1] = id; pairs_[#pairs_ + 1] = json end
  if #pairs_ > 0 then call_all('HSET', {run.items}, pairs_) end
  if run.expire then
    for i = run.first, run.k + 12 do redis.call('EXPIRE', KEYS[i], run.expire) end
    for _, i in ipairs(run.x) do redis.call('EXPIRE', KEYS[i], run.expire) end
  end
end

-- the context of each run a claimed entry's state is told for, as the group left it
local contexts = {}
for _, run in ipairs(runs) do
  if run.handed and run.cx then
    local context = {run.id, redis.call('HGETALL', run.ctx)}
    for _, c in ipairs(run.cx) do
      local kind, key = c[1], KEYS[c[2]]
      if kind == 'list' then context[#context + 1] = redis.call('LRANGE', key, 0, -1)
      elseif kind == 'set' then context[#context + 1] = redis.call('SMEMBERS', key)
      else context[#context + 1] = redis.call('HGETALL', key) end
    end
    contexts[#contexts + 1] = context
  end
end

table.insert(claimed, 1, contexts)
table.insert(claimed, 1, results)
return claimed
