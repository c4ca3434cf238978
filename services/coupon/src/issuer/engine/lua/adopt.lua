-- A coupon seen durable in the log. Known: nothing to do (a pending mark is flipped).
-- Unknown (its event landed after a rebuild read the log): the state takes it in and
-- counts it. Another coupon under the same (user, seq): reported, the caller settles it
-- by the database row.
-- KEYS: epoch, user hash, stock:D, issued:D, total, pending set, unsettled set
-- ARGV: epoch, seq, coupon id, record (issued form), user, ttl, clock, grace ms
local stop = check_epoch(KEYS[1], ARGV[1])
if stop then return stop end
local field = 'c:' .. ARGV[2]
local v = redis.call('HGET', KEYS[2], field)
if v then
  if coupon_id(v) ~= ARGV[3] then return {'CONFLICT', v} end
  if pending(v) then
    redis.call('HSET', KEYS[2], field, 'I' .. string.sub(v, 2))
    redis.call('ZREM', KEYS[6], ARGV[5] .. ':' .. ARGV[2] .. ':' .. ARGV[3])
    settled(KEYS[7], ARGV[5], now_ms(ARGV[7]), ARGV[8])
    return {'CONFIRMED'}
  end
  return {'KNOWN'}
end
redis.call('HSET', KEYS[2], field, ARGV[4])
settled(KEYS[7], ARGV[5], now_ms(ARGV[7]), ARGV[8])
local key = key_of(ARGV[4])
if key ~= '' then redis.call('HSET', KEYS[2], 'k:' .. key, ARGV[2]) end
if tonumber(redis.call('HGET', KEYS[2], 'n') or '0') < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[2], 'n', ARGV[2])
end
redis.call('INCR', KEYS[4])
redis.call('EXPIRE', KEYS[4], ARGV[6])
redis.call('INCR', KEYS[5])
if redis.call('EXISTS', KEYS[3]) == 1 and redis.call('DECR', KEYS[3]) < 0 then return {'OVERSOLD'} end
return {'ADOPTED'}
