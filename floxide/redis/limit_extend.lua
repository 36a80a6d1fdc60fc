-- limit_extend.lua: renew the concurrency slots a worker holds for another lease.
--
-- KEYS: slots (zset: holder token by lease expiry, ms), one per ARGV token
-- ARGV: lease (ms), then one holder token (run/item) per key
-- Only slots still held are renewed (XX). Returns how many were.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local renewed = 0
for i = 1, #KEYS do
  renewed = renewed + redis.call('ZADD', KEYS[i], 'XX', 'CH', now + tonumber(ARGV[1]), ARGV[i + 1])
end
return renewed
