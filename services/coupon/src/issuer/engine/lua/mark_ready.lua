-- Opens the rebuilt state, in one step with the lock check: only the rebuild that still
-- holds the lock may write the epoch. Returns the epoch, or '' when the lock was lost.
-- KEYS: rebuild lock, epoch   ARGV: owner, rebuild id
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return '' end
local epoch = run_id() .. ':' .. ARGV[2]
redis.call('SET', KEYS[2], epoch)
return epoch
