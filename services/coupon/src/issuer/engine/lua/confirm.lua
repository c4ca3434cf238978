-- The event of exactly this coupon is durable: pending -> issued. Acts on the coupon id,
-- never on "whatever the person's seq holds now".
-- KEYS: epoch, user hash, pending set, unsettled set
-- ARGV: epoch, seq, coupon id, user, clock, grace ms
local stop = check_epoch(KEYS[1], ARGV[1])
if stop and stop[1] == 'REBUILD' then return 0 end
local field = 'c:' .. ARGV[2]
local v = redis.call('HGET', KEYS[2], field)
if not v or coupon_id(v) ~= ARGV[3] then return 0 end
redis.call('ZREM', KEYS[3], ARGV[4] .. ':' .. ARGV[2] .. ':' .. ARGV[3])
if pending(v) then
  redis.call('HSET', KEYS[2], field, 'I' .. string.sub(v, 2))
  -- A later coupon of the person may be pending: that mark stays.
  local latest = redis.call('HGET', KEYS[2], 'c:' .. (redis.call('HGET', KEYS[2], 'n') or '0'))
  if not (latest and pending(latest)) then settled(KEYS[4], ARGV[4], now_ms(ARGV[5]), ARGV[6]) end
  return 1
end
return 0
