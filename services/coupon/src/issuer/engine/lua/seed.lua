-- Sets the day's stock once: the daily quantity, capped by what the campaign total still
-- allows, minus what already counted against the day. Returns the stock, or -1 to rebuild.
-- KEYS: epoch, stock:D, issued:D, total   ARGV: epoch, daily, totalLimit (0 = none), ttl
local stop = check_epoch(KEYS[1], ARGV[1])
if stop then
  if stop[1] == 'REBUILD' then return -1 end
  return -2
end
local existing = redis.call('GET', KEYS[2])
if existing then
  local s = tonumber(existing)
  if s < 0 then return 0 end
  return s
end
local s = tonumber(ARGV[2]) - tonumber(redis.call('GET', KEYS[3]) or '0')
local limit = tonumber(ARGV[3])
if limit > 0 then
  local left = limit - tonumber(redis.call('GET', KEYS[4]) or '0')
  if left < s then s = left end
end
if s < 0 then s = 0 end
redis.call('SET', KEYS[2], s, 'EX', ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[4])
return s
