-- claim_classes.lua: claim up to COUNT new entries from the streams of several priority classes,
-- reading them in the given order (each only if the ones before left room), without blocking.
--
-- KEYS: the classes' work streams, in the order to read them (consumer group ARGV[1] on each)
-- ARGV: group, consumer, count
-- Returns {{stream index (1-based), entry id, item JSON}, ...}. Entries deleted from a stream
-- meanwhile come without fields and are skipped (as XREADGROUP reports them).

local group, consumer, want = ARGV[1], ARGV[2], tonumber(ARGV[3])
local claimed = {}
for i = 1, #KEYS do
  if #claimed >= want then break end
  local reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', want - #claimed,
    'STREAMS', KEYS[i], '>')
  if reply and reply[1] then
    for _, entry in ipairs(reply[1][2]) do
      local fields = entry[2]
      if fields then
        for f = 1, #fields, 2 do
          if fields[f] == 'item' then claimed[#claimed + 1] = {i, entry[1], fields[f + 1]} end
        end
      end
    end
  end
end
return claimed
