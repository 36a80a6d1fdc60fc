-- reclaim.lua: take over entries idle longer than the lease, telling a crash from a hand-back.
--
-- KEYS[1] stream
-- ARGV: group, consumer, min idle (ms), start of the scan (an XPENDING range start: "-", or an
--       entry id), count, released idle (ms): an entry idle at least this long was handed back
--       (lease.lua releases an entry by giving it a huge idle time); any other entry idle past
--       the lease was lost by a worker that went silent (it crashed or stalled)
-- Returns {next start ("-" once the pending list was scanned to its end), entry...}; an entry is
-- {id, item JSON, deliveries, previous consumer, released ("1"/"0"), idle ms}. A lost entry's
-- delivery count goes up by one; a released one keeps its count (a hand-back is no crash and
-- does not count towards max_deliveries). Entries deleted from the stream meanwhile (trimmed)
-- leave the pending list (XCLAIM drops them) and are not returned.

local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local min_idle, start, count = ARGV[3], ARGV[4], tonumber(ARGV[5])
local released_idle = tonumber(ARGV[6])
local pending = redis.call('XPENDING', stream, group, 'IDLE', min_idle, start, '+', count + 1)
local reply = {'-'}
if #pending > count then
  reply[1] = pending[count + 1][1]
  pending[count + 1] = nil
end
for _, p in ipairs(pending) do
  local id, owner, idle, delivered = p[1], p[2], p[3], p[4]
  local released = idle >= released_idle
  local claimed
  if released then
    claimed = redis.call('XCLAIM', stream, group, consumer, 0, id, 'RETRYCOUNT', delivered)
  else
    claimed = redis.call('XCLAIM', stream, group, consumer, 0, id)
  end
  local entry = claimed[1]
  if entry and entry[2] then
    local json = nil
    for i = 1, #entry[2], 2 do
      if entry[2][i] == 'item' then json = entry[2][i + 1] end
    end
    if json then
      reply[#reply + 1] = {id, json, released and delivered or delivered + 1, owner,
        released and '1' or '0', idle}
    end
  end
end
return reply
