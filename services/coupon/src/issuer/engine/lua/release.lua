-- The event of exactly this coupon certainly never reached the log: its unit goes back.
-- KEYS: epoch, user hash, stock:D, issued:D, total, pending set, unsettled set
-- ARGV: epoch, seq, coupon id, user
local stop = check_epoch(KEYS[1], ARGV[1])
if stop and stop[1] == 'REBUILD' then return 0 end
local field = 'c:' .. ARGV[2]
local v = redis.call('HGET', KEYS[2], field)
if not v or not pending(v) or coupon_id(v) ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[2], field)
local key = key_of(v)
if key ~= '' and redis.call('HGET', KEYS[2], 'k:' .. key) == ARGV[2] then redis.call('HDEL', KEYS[2], 'k:' .. key) end
if tonumber(redis.call('HGET', KEYS[2], 'n') or '0') == tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[2], 'n', tonumber(ARGV[2]) - 1)
end
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('INCR', KEYS[3]) end
redis.call('DECR', KEYS[4])
redis.call('DECR', KEYS[5])
redis.call('ZREM', KEYS[6], ARGV[4] .. ':' .. ARGV[2] .. ':' .. ARGV[3])
redis.call('ZREM', KEYS[7], ARGV[4])
return 1
