-- lease.lua: renew (or give up) the leases a consumer still holds.
--
-- KEYS[1] stream
-- ARGV: group, consumer, idle (ms: 0 renews the lease, a huge value releases the item: reclaim.lua
--       takes an entry that idle as handed back, not lost in a crash), delivery ids...
-- Only entries still owned by the consumer are touched. Returns how many were.

local touched = 0
for i = 4, #ARGV do
  local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if entry[1] and entry[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'JUSTID')
    touched = touched + 1
  end
end
return touched
