-- What the issuer watches every second: the epoch (or ''), this server's run id, its
-- eviction policy and the one clock.
-- KEYS: epoch   ARGV: clock (shift ms, or =ms)
local policy = string.match(redis.call('INFO', 'memory'), 'maxmemory_policy:([%w-]+)') or 'unknown'
return {redis.call('GET', KEYS[1]) or '', run_id(), policy, int(now_ms(ARGV[1]))}
