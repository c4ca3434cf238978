-- The rebuild lease: renew (ARGV[2] > 0) or release (ARGV[2] = 0) it, only by its owner.
-- KEYS: rebuild lock   ARGV: owner, ttl ms
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) > 0 then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return redis.call('DEL', KEYS[1])
