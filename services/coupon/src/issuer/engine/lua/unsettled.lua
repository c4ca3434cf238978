-- The one clock's time and the holders not yet known to every replica's index (pending,
-- or issued within the grace period).
-- KEYS: unsettled set   ARGV: clock, grace ms
local now = now_ms(ARGV[1])
local users = redis.call('ZRANGEBYSCORE', KEYS[1], int(now - tonumber(ARGV[2])), '+inf')
table.insert(users, 1, int(now))
return users
