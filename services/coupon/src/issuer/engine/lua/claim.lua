-- Pending coupons older than the longest a publish can take: their publish failed or was
-- cut off. Each one returned is leased to the caller (its age restarts), so replicas
-- resolving at the same time re-send different coupons.
-- KEYS: epoch, pending set   ARGV: epoch, clock (shift ms, or =ms), older than ms, max
local stop = check_epoch(KEYS[1], ARGV[1])
if stop then return stop end
local now = now_ms(ARGV[2])
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', int(now - tonumber(ARGV[3])), 'LIMIT', 0, tonumber(ARGV[4]))
for _, member in ipairs(stale) do
  redis.call('ZADD', KEYS[2], now, member)
end
table.insert(stale, 1, 'CLAIMED')
return stale
