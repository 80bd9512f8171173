-- reserve_v3 — the budget decision: reserve a request's worst case against the client's day and
-- month, or refuse. Caller: TollgateRedis/BudgetStore.swift (`reserve`), which also parses the
-- reply into TollgateCore's ReserveOutcome (BudgetDecision.swift).
--
-- KEYS:
--   KEYS[1]  tollgate:{C}:limits  hash daily, monthly (nano-USD); absent -> ARGV defaults
--   KEYS[2]  tollgate:{C}:leases  zset lease member -> deadline (ms since epoch)
-- ARGV:
--   ARGV[1]  key prefix "tollgate:{C}"
--   ARGV[2]  clock offset seconds (0 in production; tests move time)
--   ARGV[3]  UTC offset of budget.timezone in force before ARGV[4], seconds
--   ARGV[4]  unix time (seconds) of that offset's next change; far future when none is known
--   ARGV[5]  UTC offset from ARGV[4] on, seconds
--   ARGV[6]  reservation id (no '|')
--   ARGV[7]  fixed cost: the input upper bound, nano-USD
--   ARGV[8]  cost per output token, nano-USD (already times n choices)
--   ARGV[9]  requested output tokens
--   ARGV[10] minimum output tokens (== ARGV[9]: no clamping)
--   ARGV[11] default daily limit, nano-USD
--   ARGV[12] default monthly limit, nano-USD
--   ARGV[13] lease, ms
--   ARGV[14] day key grace, seconds (>= 3600, the largest DST shift: docs/config.md)
--   ARGV[15] month key grace, seconds
--   ARGV[16] how long a reaped lease is remembered, seconds
-- Returns: (numbers describe the tighter period)
--   granted: {1, grantedTokens, cost, limit, remaining, resetsAt, leasesReaped, lease member}
--   refused: {0, "daily"|"monthly", limit, spent, resetsAt, leasesReaped, reserved}
--
-- Why the name carries a version: during a rolling deploy old and new replicas share one Redis.
-- An old replica must never call new semantics under an old name, so a changed contract gets a
-- new file and both live side by side until the old replicas are gone (reserve_v2.lua stays).
-- v3 changed from v2:
--   * Reaped means charged. A lease whose replica never settled may well have been billed by
--     the provider, so the reaper moves its cost from `reserved` to `spent` (v2 only released
--     it, which let a crashing replica spend without limit). It leaves a C|… marker, not v2's
--     R|…, so an old replica's settle_v2 (which looks for R|) never finds it and never charges
--     it a second time; settle_v3 corrects the charge to the actual cost, once.
--   * DST-correct days: ARGV[3..5] carry the offset now, its next change and the offset after
--     it (v2: one offset the replica computed by its own clock). The date follows the offset in
--     force at Redis TIME, and a period ends at the local midnight computed with the offset in
--     force at that midnight, so a day key expires at the right hour on a DST-change day.
-- renew_v2.lua is unchanged (its contract did not change) and still renews v3's A|… leases.
--
-- Key layout (docs/redis.md): every key of a client carries the hash tag {CLIENT}, so one
-- client's keys share a Redis Cluster slot. The day and month keys are derived here from Redis
-- TIME (one clock for all replicas), which is why they are not in KEYS:
--   tollgate:{C}:day:YYYY-MM-DD  hash spent, reserved, requests, refused, leases_reaped
--   tollgate:{C}:month:YYYY-MM   hash spent, reserved, requests, refused
-- A lease is one member of tollgate:{C}:leases that carries everything settle needs:
--   A|<reservation id>|<cost>|<day key>|<month key>   score: its deadline, ms since epoch
-- The reply hands it to the replica, which passes it back to settle_v3 and renew_v2. The reaper
-- below replaces an expired A|… member by C|… (same data) scored by the retention deadline,
-- after charging its cost, so a late settle corrects the spend exactly once. An R|… member
-- (reaped by an old reserve_v2: released, not charged) is still settled by settle_v3.
--
-- All amounts stay below 2^53 (Lua numbers are doubles); the caller validates limits. Numbers
-- go back to Redis through string.format('%d') because tostring() would write 1e+15 (and so
-- would Redis 7.2+ for a number passed to redis.call).
-- Three phases: read everything, decide, then write everything or nothing.
--
-- Cost: every request runs this on the one Redis all replicas share. What costs is each
-- redis.call and each number crossing between Lua and Redis (tonumber parses a string twice,
-- string.format is a sprintf): one HMGET per hash, counters moved with HINCRBY (the number
-- stays in Redis), EXPIREAT only for a key this call creates, `+ 0` instead of tonumber,
-- numbers in the reply (exact integer replies). Measured in docs/redis.md.

local function int(x) return string.format('%d', x) end
-- Floored division of integral numbers without a call into math.floor (a C function).
local function div(a, b) return (a - a % b) / b end

-- Howard Hinnant's civil-from-days / days-from-civil (proleptic Gregorian).
local function civil(z)
  z = z + 719468
  local era = div(z, 146097)
  local doe = z - era * 146097
  local yoe = div(doe - div(doe, 1460) + div(doe, 36524) - div(doe, 146096), 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + div(yoe, 4) - div(yoe, 100))
  local mp = div(5 * doy + 2, 153)
  local d = doy - div(153 * mp + 2, 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = div(y, 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = div(153 * mp + 2, 5) + d - 1
  local doe = yoe * 365 + div(yoe, 4) - div(yoe, 100) + doy
  return era * 146097 + doe - 719468
end

-- A '|' in the id would make the lease member unparseable: never settled, never released.
if ARGV[6] == '' or string.find(ARGV[6], '|', 1, true) then
  return redis.error_reply('ERR reserve_v3: the reservation id must be non-empty without "|"')
end

local prefix = ARGV[1]
local t = redis.call('TIME')
local now = t[1] + ARGV[2]
local now_ms = now * 1000 + div(t[2], 1000)
-- The offset in force by Redis TIME, not by the replica's clock.
local tz, change, tz_after = ARGV[3] + 0, ARGV[4] + 0, ARGV[5] + 0
if now >= change then tz = tz_after end

-- The instant local day number `local_days` begins: its midnight in the offset in force then.
-- One known change is enough for a month (zones change at most twice a year).
local function midnight(local_days)
  local at = local_days * 86400 - tz
  if at < change then return at end
  at = local_days * 86400 - tz_after
  -- Clocks jumped over this midnight (a change at 00:00): the day begins at the jump.
  if at < change then return change end
  return at
end

local days = div(now + tz, 86400)
local y, m, d = civil(days)
local date = string.format('%04d-%02d-%02d', y, m, d)
local day_key = prefix .. ':day:' .. date
local month_key = prefix .. ':month:' .. string.sub(date, 1, 7)
local day_end = midnight(days + 1)
local ny, nm = y, m + 1
if nm == 13 then ny, nm = y + 1, 1 end
local month_end = midnight(days_from_civil(ny, nm, 1))

-- The rest of ARGV as numbers, here: `+ 0` fails on a garbled one before anything is written.
local fixed, unit = ARGV[7] + 0, ARGV[8] + 0
local requested, minimum = ARGV[9] + 0, ARGV[10] + 0
local default_daily, default_monthly = ARGV[11] + 0, ARGV[12] + 0
local lease_ms, retention_ms = ARGV[13] + 0, ARGV[16] * 1000
local day_grace, month_grace = ARGV[14] + 0, ARGV[15] + 0

-- Reap leases whose replica never settled (crash, partition): each is charged its reservation,
-- since the provider may have billed it. Bounded per call. Runs before the reads below, so what
-- it moves in today's keys is already in what they see.
local reaped = 0
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', int(now_ms), 'LIMIT', '0', '32')
if #expired > 0 then
  local charged, periods, remembered = {}, {}, {}
  local keep_until = int(now_ms + retention_ms)
  for _, member in ipairs(expired) do
    local cost, dk, mk = string.match(member, '^A|[^|]+|(%d+)|([^|]+)|([^|]+)$')
    if cost then
      for _, k in ipairs({dk, mk}) do
        if not charged[k] then charged[k] = 0; periods[#periods + 1] = k end
        charged[k] = charged[k] + cost
      end
      remembered[#remembered + 1] = keep_until
      remembered[#remembered + 1] = 'C' .. string.sub(member, 2)
      reaped = reaped + 1
    end
    -- Anything else here is a C|… or R|… member past its retention: forgotten.
  end
  redis.call('ZREM', KEYS[2], unpack(expired))
  if reaped > 0 then
    redis.call('ZADD', KEYS[2], unpack(remembered))
    for _, k in ipairs(periods) do
      -- A period whose key already expired is over; its counters are not recreated.
      if redis.call('EXISTS', k) == 1 then
        redis.call('HINCRBY', k, 'reserved', int(-charged[k]))
        redis.call('HINCRBY', k, 'spent', int(charged[k]))
      end
    end
    -- May create today's key; the reads below still see it as new and give it its expiry.
    redis.call('HINCRBY', day_key, 'leases_reaped', reaped)
  end
end

-- Read. Every write below adds to `reserved` or `refused`; a key with neither spent nor
-- reserved is taken for new and given its expiry (again, for a key holding only `refused`:
-- harmless).
local limits = redis.call('HMGET', KEYS[1], 'daily', 'monthly')
local day_limit = (limits[1] or default_daily) + 0
local month_limit = (limits[2] or default_monthly) + 0
local dv = redis.call('HMGET', day_key, 'spent', 'reserved')
local mv = redis.call('HMGET', month_key, 'spent', 'reserved')
local day_spent, day_reserved = (dv[1] or 0) + 0, (dv[2] or 0) + 0
local month_spent, month_reserved = (mv[1] or 0) + 0, (mv[2] or 0) + 0
local day_left = day_limit - day_spent - day_reserved
local month_left = month_limit - month_spent - month_reserved

-- Decide.
local left = math.min(day_left, month_left)
local granted = requested
if fixed + unit * requested > left then
  granted = -1
  if minimum < requested and left >= fixed then
    local affordable = unit > 0 and div(left - fixed, unit) or requested
    if affordable >= minimum then granted = math.min(affordable, requested) end
  end
end

-- Write: one HINCRBY per period hash, EXPIREAT only on a key this call creates.
local function add(key, read, field, amount, period_end, grace)
  redis.call('HINCRBY', key, field, amount)
  if not (read[1] or read[2]) then redis.call('EXPIREAT', key, int(period_end + grace)) end
end

if granted < 0 then
  add(day_key, dv, 'refused', '1', day_end, day_grace)
  add(month_key, mv, 'refused', '1', month_end, month_grace)
  if day_left <= month_left then return {0, 'daily', day_limit, day_spent, day_end, reaped, day_reserved} end
  return {0, 'monthly', month_limit, month_spent, month_end, reaped, month_reserved}
end

local cost = fixed + unit * granted
local cost_text = int(cost)
local lease = 'A|' .. ARGV[6] .. '|' .. cost_text .. '|' .. day_key .. '|' .. month_key
local deadline = now_ms + lease_ms
add(day_key, dv, 'reserved', cost_text, day_end, day_grace)
add(month_key, mv, 'reserved', cost_text, month_end, month_grace)
redis.call('ZADD', KEYS[2], int(deadline), lease)
-- The leases key outlives its newest lease by the retention, so an abandoned client's
-- leases disappear. PEXPIREAT: PEXPIRE would be rewritten to it for propagation anyway.
redis.call('PEXPIREAT', KEYS[2], int(deadline + retention_ms))

if day_left <= month_left then return {1, granted, cost, day_limit, day_left - cost, day_end, reaped, lease} end
return {1, granted, cost, month_limit, month_left - cost, month_end, reaped, lease}
