-- One request of one person, atomically: what they already hold, the window on the one
-- clock, eligibility, the day's stock and the campaign total; then takes a unit and
-- records the coupon as pending (its event is not known to be durable yet).
-- KEYS: epoch, stock:D, issued:D, total, eligible:D, user hash, pending set, unsettled set
-- ARGV: epoch, clock (shift ms, or =ms), user, perUser, requireEligible, totalLimit (0 = none),
--       idempotency key ('' = none), opens ms, closes ms, coupon id, code, day, validity ms
local stop = check_epoch(KEYS[1], ARGV[1])
if stop then return stop end
local now = now_ms(ARGV[2])
local u = KEYS[6]
if ARGV[7] ~= '' then
  local s = redis.call('HGET', u, 'k:' .. ARGV[7])
  if s then
    local r = redis.call('HGET', u, 'c:' .. s)
    if r then return {'HOLDS', s, r, int(now)} end
  end
end
local n = tonumber(redis.call('HGET', u, 'n') or '0')
if n > 0 then
  local last = redis.call('HGET', u, 'c:' .. n)
  -- at the limit, or the latest coupon still pending: hand that one back
  if last and (n >= tonumber(ARGV[4]) or pending(last)) then return {'HOLDS', tostring(n), last, int(now)} end
end
if now < tonumber(ARGV[8]) or now >= tonumber(ARGV[9]) then return {'OUTSIDE', int(now)} end
if ARGV[5] == '1' and redis.call('SISMEMBER', KEYS[5], ARGV[3]) == 0 then return {'NOT_ELIGIBLE'} end
local stock = redis.call('GET', KEYS[2])
if not stock then return {'UNSEEDED'} end
if tonumber(stock) <= 0 then return {'SOLD_OUT_TODAY'} end
local limit = tonumber(ARGV[6])
if limit > 0 and tonumber(redis.call('GET', KEYS[4]) or '0') >= limit then return {'SOLD_OUT_TOTAL'} end
redis.call('DECR', KEYS[2])
redis.call('INCR', KEYS[3])
redis.call('INCR', KEYS[4])
local seq = n + 1
local record = 'P|' .. ARGV[10] .. '|' .. ARGV[11] .. '|' .. int(now) .. '|' .. int(now + tonumber(ARGV[13]))
  .. '|' .. ARGV[12] .. '|' .. ARGV[7]
redis.call('HSET', u, 'n', seq, 'c:' .. seq, record)
if ARGV[7] ~= '' then redis.call('HSET', u, 'k:' .. ARGV[7], seq) end
redis.call('ZADD', KEYS[7], now, ARGV[3] .. ':' .. seq .. ':' .. ARGV[10])
redis.call('ZADD', KEYS[8], PENDING, ARGV[3])
return {'TAKEN', tostring(seq), record}
