-- Shared by every script (prepended to each): the state's epoch and the one clock.
--
-- The epoch is `<run_id>:<rebuild id>`, written when a rebuild completes. A state whose
-- epoch is missing, or names another server process than the one answering (a restart
-- that restored an older snapshot, a promoted replica that missed writes), is not
-- trusted: every step answers REBUILD until it is rebuilt from the log and database.

local function run_id()
  return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
end

-- nil when the state may be used under `expected`; otherwise the reply to return.
local function check_epoch(key, expected)
  local epoch = redis.call('GET', key)
  if not epoch then return {'REBUILD'} end
  if string.match(epoch, '^(%x+):') ~= run_id() then return {'REBUILD'} end
  if epoch ~= expected then return {'STALE', epoch} end
  return nil
end

-- Milliseconds since the Unix epoch on this server's clock, plus a shift every replica
-- passes alike (rehearsals and tests move the one clock, never one replica's). `=MS`
-- instead of a shift is a test's manual clock standing in for the server's.
local function now_ms(clock)
  if string.sub(clock, 1, 1) == '=' then return tonumber(string.sub(clock, 2)) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(clock)
end

local function int(x)
  return string.format('%.0f', x)
end

-- Records are `P|I` `|coupon id|code|issued ms|expires ms|day|idempotency key`.
local function pending(record)
  return string.sub(record, 1, 1) == 'P'
end

local function coupon_id(record)
  return string.sub(record, 3, 38)
end

-- Holders not yet known to every replica's index: pending (score = PENDING) or issued
-- within the grace period (score = when). Replicas answering "sold out", "not open" or
-- "ended" from local state first ask whether the person is one of them.
local PENDING = '9000000000000000'

local function settled(unsettled, user, now, grace)
  redis.call('ZADD', unsettled, int(now), user)
  redis.call('ZREMRANGEBYSCORE', unsettled, '-inf', int(now - tonumber(grace)))
end

local function key_of(record)
  local _, _, key = string.find(record, '^[PI]|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|(.*)$')
  return key or ''
end
