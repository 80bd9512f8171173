-- reserve_v1 — the budget decision: reserve a request's worst case against the client's day and
-- month, or refuse. Caller: TollgateRedis/BudgetStore.swift (`reserve`), which also parses the
-- reply into TollgateCore's ReserveOutcome (BudgetDecision.swift).
--
-- Why the name carries a version: during a rolling deploy old and new replicas share one Redis.
-- An old replica must never call new semantics under an old name, so a changed contract gets a
-- new file (reserve_v2.lua) and both live side by side until the old replicas are gone.
--
-- Key layout (docs/redis.md): every key of a client carries the hash tag {CLIENT}, so one
-- client's keys share a Redis Cluster slot. The day and month keys are derived here from Redis
-- TIME (one clock for all replicas), which is why they are not in KEYS:
--   tollgate:{C}:day:YYYY-MM-DD  hash spent, reserved, requests, refused, leases_reaped
--   tollgate:{C}:month:YYYY-MM   hash spent, reserved, requests, refused
--
-- KEYS:
--   KEYS[1]  tollgate:{C}:limits      hash daily, monthly (nano-USD); absent -> ARGV defaults
--   KEYS[2]  tollgate:{C}:leases      zset reservation id -> deadline (ms since epoch)
--   KEYS[3]  tollgate:{C}:lease_data  hash reservation id -> "state|cost|dayKey|monthKey"
--                                     (state A = active, R = reaped: reserved already released)
-- ARGV:
--   ARGV[1]  key prefix "tollgate:{C}"
--   ARGV[2]  clock offset seconds (0 in production; tests move time)
--   ARGV[3]  UTC offset of budget.timezone, seconds
--   ARGV[4]  reservation id
--   ARGV[5]  fixed cost: the input upper bound, nano-USD
--   ARGV[6]  cost per output token, nano-USD (already times n choices)
--   ARGV[7]  requested output tokens
--   ARGV[8]  minimum output tokens (== ARGV[7]: no clamping)
--   ARGV[9]  default daily limit, nano-USD
--   ARGV[10] default monthly limit, nano-USD
--   ARGV[11] lease, ms
--   ARGV[12] day key grace, seconds
--   ARGV[13] month key grace, seconds
--   ARGV[14] how long a reaped lease is remembered, seconds
-- Returns (numbers describe the tighter period):
--   granted: {1, grantedTokens, cost, limit, remaining, resetsAt, leasesReaped}
--   refused: {0, "daily"|"monthly", limit, spent, resetsAt, leasesReaped, reserved}
--
-- All amounts stay below 2^53 (Lua numbers are doubles); the caller validates limits. Numbers
-- go back to Redis through string.format('%d') because tostring() would write 1e+15.
-- Three phases: read everything, decide, then write everything or nothing.

local function int(x) return string.format('%d', x) end

-- Howard Hinnant's civil-from-days / days-from-civil (proleptic Gregorian).
local function civil(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local prefix = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(ARGV[2])
local now_ms = now * 1000 + math.floor(tonumber(t[2]) / 1000)
local tz = tonumber(ARGV[3])

local days = math.floor((now + tz) / 86400)
local y, m, d = civil(days)
local day_key = prefix .. ':day:' .. string.format('%04d-%02d-%02d', y, m, d)
local month_key = prefix .. ':month:' .. string.format('%04d-%02d', y, m)
local day_end = (days + 1) * 86400 - tz
local ny, nm = y, m + 1
if nm == 13 then ny, nm = y + 1, 1 end
local month_end = days_from_civil(ny, nm, 1) * 86400 - tz

-- Reap leases whose replica never settled (crash, partition). Bounded per call.
local retention_ms = tonumber(ARGV[14]) * 1000
local reaped = 0
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms, 'LIMIT', 0, 32)
for _, rid in ipairs(expired) do
  local v = redis.call('HGET', KEYS[3], rid)
  local state, cost, dk, mk
  if v then state, cost, dk, mk = string.match(v, '^(%a)|(%d+)|([^|]+)|([^|]+)$') end
  if state == 'A' then
    for _, k in ipairs({dk, mk}) do
      if redis.call('EXISTS', k) == 1 then redis.call('HINCRBY', k, 'reserved', '-' .. cost) end
    end
    -- Keep the lease's keys for a while: a late settle still charges its spend exactly once.
    redis.call('HSET', KEYS[3], rid, 'R|0|' .. dk .. '|' .. mk)
    redis.call('ZADD', KEYS[2], int(now_ms + retention_ms), rid)
    reaped = reaped + 1
  else
    redis.call('HDEL', KEYS[3], rid)
    redis.call('ZREM', KEYS[2], rid)
  end
end
if reaped > 0 then redis.call('HINCRBY', day_key, 'leases_reaped', reaped) end

-- Read.
local limits = redis.call('HMGET', KEYS[1], 'daily', 'monthly')
local day_limit = tonumber(limits[1]) or tonumber(ARGV[9])
local month_limit = tonumber(limits[2]) or tonumber(ARGV[10])
local dv = redis.call('HMGET', day_key, 'spent', 'reserved')
local mv = redis.call('HMGET', month_key, 'spent', 'reserved')
local day_spent, day_reserved = tonumber(dv[1]) or 0, tonumber(dv[2]) or 0
local month_spent, month_reserved = tonumber(mv[1]) or 0, tonumber(mv[2]) or 0
local day_left = day_limit - day_spent - day_reserved
local month_left = month_limit - month_spent - month_reserved

-- Decide.
local fixed = tonumber(ARGV[5])
local unit = tonumber(ARGV[6])
local requested = tonumber(ARGV[7])
local minimum = tonumber(ARGV[8])
local left = math.min(day_left, month_left)
local granted = requested
if fixed + unit * requested > left then
  granted = -1
  if minimum < requested and left >= fixed then
    local affordable = unit > 0 and math.floor((left - fixed) / unit) or requested
    if affordable >= minimum then granted = math.min(affordable, requested) end
  end
end

if granted < 0 then
  redis.call('HINCRBY', day_key, 'refused', 1)
  redis.call('HINCRBY', month_key, 'refused', 1)
  redis.call('EXPIREAT', day_key, int(day_end + tonumber(ARGV[12])))
  redis.call('EXPIREAT', month_key, int(month_end + tonumber(ARGV[13])))
  if day_left <= month_left then
    return {0, 'daily', int(day_limit), int(day_spent), int(day_end), reaped, int(day_reserved)}
  end
  return {0, 'monthly', int(month_limit), int(month_spent), int(month_end), reaped, int(month_reserved)}
end

-- Write.
local cost = fixed + unit * granted
local rid = ARGV[4]
redis.call('HINCRBY', day_key, 'reserved', int(cost))
redis.call('HINCRBY', month_key, 'reserved', int(cost))
redis.call('EXPIREAT', day_key, int(day_end + tonumber(ARGV[12])))
redis.call('EXPIREAT', month_key, int(month_end + tonumber(ARGV[13])))
redis.call('ZADD', KEYS[2], int(now_ms + tonumber(ARGV[11])), rid)
redis.call('HSET', KEYS[3], rid, 'A|' .. int(cost) .. '|' .. day_key .. '|' .. month_key)
local keep_ms = int(tonumber(ARGV[11]) + retention_ms)
redis.call('PEXPIRE', KEYS[2], keep_ms)
redis.call('PEXPIRE', KEYS[3], keep_ms)

if day_left - cost <= month_left - cost then
  return {1, granted, int(cost), int(day_limit), int(day_left - cost), int(day_end), reaped}
end
return {1, granted, int(cost), int(month_limit), int(month_left - cost), int(month_end), reaped}
