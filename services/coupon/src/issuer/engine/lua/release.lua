-- The event of exactly this coupon certainly never reached the log: its unit goes back —
-- unless the coupon was claimed meanwhile by a replica re-sending it (its pending score
-- is no longer the take's time), whose publish may have made it durable.
-- KEYS: epoch, user hash, stock:D, issued:D, total, pending set, unsettled set
-- ARGV: epoch, seq, coupon id, user, clock, grace ms
local stop = check_epoch(KEYS[1], ARGV[1])
if stop and stop[1] == 'REBUILD' then return 0 end
local field = 'c:' .. ARGV[2]
local v = redis.call('HGET', KEYS[2], field)
if not v or not pending(v) or coupon_id(v) ~= ARGV[3] then return 0 end
local member = ARGV[4] .. ':' .. ARGV[2] .. ':' .. ARGV[3]
local taken_at = string.match(v, '^P|[^|]*|[^|]*|(%d+)|')
if redis.call('ZSCORE', KEYS[6], member) ~= taken_at then return 0 end
redis.call('HDEL', KEYS[2], field)
local key = key_of(v)
if key ~= '' and redis.call('HGET', KEYS[2], 'k:' .. key) == ARGV[2] then redis.call('HDEL', KEYS[2], 'k:' .. key) end
if tonumber(redis.call('HGET', KEYS[2], 'n') or '0') == tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[2], 'n', tonumber(ARGV[2]) - 1)
end
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('INCR', KEYS[3]) end
redis.call('DECR', KEYS[4])
redis.call('DECR', KEYS[5])
redis.call('ZREM', KEYS[6], member)
-- Their other coupons (perUser > 1) may be recent: keep the person unsettled a while.
settled(KEYS[7], ARGV[4], now_ms(ARGV[5]), ARGV[6])
return 1
