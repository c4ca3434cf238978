-- Two coupons claimed one (user, seq): the one in the database wins everywhere. The unit
-- counts once either way; only the record (and its idempotency key) changes.
-- KEYS: epoch, user hash, pending set   ARGV: epoch, seq, record (issued form), user
local stop = check_epoch(KEYS[1], ARGV[1])
if stop then return stop end
local field = 'c:' .. ARGV[2]
local old = redis.call('HGET', KEYS[2], field)
if old then
  local key = key_of(old)
  if key ~= '' and redis.call('HGET', KEYS[2], 'k:' .. key) == ARGV[2] then redis.call('HDEL', KEYS[2], 'k:' .. key) end
  redis.call('ZREM', KEYS[3], ARGV[4] .. ':' .. ARGV[2] .. ':' .. coupon_id(old))
end
redis.call('HSET', KEYS[2], field, ARGV[3])
local key = key_of(ARGV[3])
if key ~= '' then redis.call('HSET', KEYS[2], 'k:' .. key, ARGV[2]) end
return {'REPLACED'}
