-- reserve_v4 — the budget decision: reserve a request's worst case against the client's day and
-- month, or refuse. Caller: TollgateRedis/BudgetStore.swift (`reserve`), which also parses the
-- reply into TollgateCore's ReserveOutcome (BudgetDecision.swift).
--
-- KEYS:
--   KEYS[1]  tollgate:{C}:limits  hash daily, monthly (nano-USD); absent -> ARGV defaults
--   KEYS[2]  tollgate:{C}:leases  zset lease member -> deadline (ms since epoch)
--   KEYS[3]  tollgate:{C}:alerts  the client's alert outbox (stream), written only on a refusal
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
--   Policy (ClientPolicy.swift; the client's own fields in KEYS[1] win over these defaults):
--   ARGV[17] default on_limit: "block" | "warn" | "stop"
--   ARGV[18] loop-breaker fingerprint of the request ('' = not checked)
--   ARGV[19] default loop_max (0 = off), ARGV[20] default loop_window, seconds
--   ARGV[21] daily cap from the request's header, nano-USD ('' = none), ARGV[22] monthly cap
--   ARGV[23] workflow run id ('' = none), ARGV[24] the run's cap from its header ('' = none)
--   ARGV[25] default run_limit, nano-USD ('' = none), ARGV[26] run TTL, seconds
--   ARGV[27] requested model
--   ARGV[28] default downgrade_at percent (0 = off), ARGV[29] default cheaper model ('' = none)
--   ARGV[30] the cheaper model the replica priced ('' = none) and its estimate:
--   ARGV[31] fixed cost, ARGV[32] cost per output token, ARGV[33] requested, ARGV[34] minimum tokens
--   ARGV[35] default alert thresholds, percent, comma-separated ('' = none)
--   ARGV[36] outbox length bound (XADD MAXLEN ~)
-- Returns: (numbers describe the binding limit: the one with least left)
--   granted: {1, grantedTokens, cost, limit, remaining, resetsAt, leasesReaped, lease member,
--             overLimit (1: on_limit warn let it through), downgradedTo ('' = none), period}
--   refused: {0, "daily"|"monthly"|"run", limit, spent, resetsAt (0 for a run), leasesReaped,
--             reserved, "block"|"stop", alertFired (1: this refusal fired the 100 % alert)}
--   loop:    {0, "loop", loop_max, times seen, retry at (unix s), leasesReaped, window s, "block", 0}
--   price:   {2, cheaper model}: the policy downgrades to a model the replica did not price;
--            nothing was written; call again with that model's estimate
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
--   * Policies (README, "Budget policies"): on_limit block/warn/stop, auto-downgrade, the loop
--     breaker, workflow run budgets and header budgets, all decided here in the same call.
--     The lease member grows two fields: the run key and flags ('w': let through over the
--     limit); v2's five-field members are still reaped and settled.
-- v4 changed from v3 (settle_v4.lua fires the alerts crossed by spend):
--   * The wall alert: a refusal at a limit the client was given (not a header cap) fires the
--     100 % threshold once per window, marked `alert_wall` in the period hash, before spend
--     itself reaches 100 % (it may never: the last request that fits rarely fills it exactly).
--   * `downgrades` in the day hash counts auto-downgraded requests (analytics, dashboard).
--   * A run hash keeps its `limit`, so settle_v4 can fire the run's thresholds.
--   Its replies and lease members are v3's: settle_v3 settles v4's leases and the other way round.
-- renew_v2.lua is unchanged (its contract did not change) and still renews v3's A|… leases.
--
-- Key layout (docs/redis.md): every key of a client carries the hash tag {CLIENT}, so one
-- client's keys share a Redis Cluster slot. The day and month keys are derived here from Redis
-- TIME (one clock for all replicas), which is why they are not in KEYS:
--   tollgate:{C}:day:YYYY-MM-DD  hash spent, reserved, requests, refused, leases_reaped,
--                                loop_trips, over_limit_requests, over_limit_spent
--   tollgate:{C}:month:YYYY-MM   hash spent, reserved, requests, refused, over_limit_spent
--   tollgate:{C}:run:<run id>    hash spent, reserved, requests; expires ARGV[26] after its last use
--   tollgate:{C}:loop:<fingerprint>  counter of one request's repeats, expires with its window
-- A lease is one member of tollgate:{C}:leases that carries everything settle needs:
--   A|<reservation id>|<cost>|<day key>|<month key>|<run key or ''>|<flags>   score: deadline, ms
-- The reply hands it to the replica, which passes it back to settle_v4 and renew_v2. The reaper
-- below replaces an expired A|… member by C|… (same data) scored by the retention deadline,
-- after charging its cost, so a late settle corrects the spend exactly once. An R|… member
-- (reaped by an old reserve_v2: released, not charged) is still settled by settle_v4.
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

-- A lease member's fields; v2 wrote the first five only.
local function lease_fields(member)
  local cost, dk, mk, rk, flags = string.match(member, '^A|[^|]+|(%d+)|([^|]+)|([^|]+)|([^|]*)|(%a*)$')
  if cost then return cost, dk, mk, rk, flags end
  cost, dk, mk = string.match(member, '^A|[^|]+|(%d+)|([^|]+)|([^|]+)$')
  return cost, dk, mk, '', ''
end

-- A '|' in the id would make the lease member unparseable: never settled, never released.
if ARGV[6] == '' or string.find(ARGV[6], '|', 1, true) then
  return redis.error_reply('ERR reserve_v4: the reservation id must be non-empty without "|"')
end
if string.find(ARGV[23], '|', 1, true) then
  return redis.error_reply('ERR reserve_v4: the run id must not contain "|"')
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
local default_loop_max, default_loop_window = ARGV[19] + 0, ARGV[20] + 0
local run_ttl, default_at = ARGV[26] + 0, ARGV[28] + 0
local header_daily = ARGV[21] ~= '' and ARGV[21] + 0 or nil
local header_monthly = ARGV[22] ~= '' and ARGV[22] + 0 or nil
local header_run = ARGV[24] ~= '' and ARGV[24] + 0 or nil
local default_run = ARGV[25] ~= '' and ARGV[25] + 0 or nil
local fallback_priced = ARGV[30]
local fb_fixed, fb_unit, fb_requested, fb_minimum = 0, 0, 0, 0
if fallback_priced ~= '' then fb_fixed, fb_unit, fb_requested, fb_minimum = ARGV[31] + 0, ARGV[32] + 0, ARGV[33] + 0, ARGV[34] + 0 end

-- Reap leases whose replica never settled (crash, partition): each is charged its reservation,
-- since the provider may have billed it. Bounded per call. Runs before the reads below, so what
-- it moves in today's keys is already in what they see.
local reaped = 0
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', int(now_ms), 'LIMIT', '0', '32')
if #expired > 0 then
  local charged, periods, remembered, over = {}, {}, {}, {}
  local keep_until = int(now_ms + retention_ms)
  for _, member in ipairs(expired) do
    local cost, dk, mk, rk, flags = lease_fields(member)
    if cost then
      for _, k in ipairs({dk, mk, rk}) do
        if k ~= '' then
          if not charged[k] then charged[k] = 0; periods[#periods + 1] = k end
          charged[k] = charged[k] + cost
        end
      end
      if flags == 'w' then
        for _, k in ipairs({dk, mk}) do
          over[k] = (over[k] or 0) + cost
        end
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
        if over[k] then redis.call('HINCRBY', k, 'over_limit_spent', int(over[k])) end
      end
    end
    -- May create today's key; the reads below still see it as new and give it its expiry.
    redis.call('HINCRBY', day_key, 'leases_reaped', reaped)
  end
end

-- Read. Every write below adds to `reserved` or `refused`; a key with neither spent nor
-- reserved is taken for new and given its expiry (again, for a key holding only `refused`:
-- harmless). The client's policy sits in its limits hash beside its limits; a field it does not
-- have takes the config default the replica passed.
local p = redis.call('HMGET', KEYS[1], 'daily', 'monthly', 'on_limit', 'loop_max', 'loop_window', 'run_limit',
  'downgrade_at', 'downgrade:' .. ARGV[27], 'alerts')
local day_limit = (p[1] or default_daily) + 0
local month_limit = (p[2] or default_monthly) + 0
-- The limits the client was given: alerts are about these, not a request's header cap.
local given = {daily = day_limit, monthly = month_limit}
-- Header budgets only ever lower a limit.
if header_daily then day_limit = math.min(day_limit, header_daily) end
if header_monthly then month_limit = math.min(month_limit, header_monthly) end
local dv = redis.call('HMGET', day_key, 'spent', 'reserved')
local mv = redis.call('HMGET', month_key, 'spent', 'reserved')

-- The 100 % alert is one of the client's thresholds (its own `alerts` field, else the default).
local function wall_alert_enabled(own)
  for t in string.gmatch(own or ARGV[35], '%d+') do
    if t + 0 == 100 then return true end
  end
  return false
end

local function add(key, read, field, amount, period_end, grace)
  redis.call('HINCRBY', key, field, amount)
  if not (read[1] or read[2]) then redis.call('EXPIREAT', key, int(period_end + grace)) end
end

-- Loop breaker: the same request (the replica's fingerprint of route, model and content) more
-- than loop_max times within loop_window seconds is refused, on every replica alike.
local loop_max = (p[4] or default_loop_max) + 0
if ARGV[18] ~= '' and loop_max > 0 then
  local window = (p[5] or default_loop_window) + 0
  local loop_key = prefix .. ':loop:' .. ARGV[18]
  local seen = redis.call('INCR', loop_key)
  if seen == 1 then redis.call('EXPIRE', loop_key, window) end
  if seen > loop_max then
    add(day_key, dv, 'loop_trips', '1', day_end, day_grace)
    local ttl = redis.call('TTL', loop_key)
    return {0, 'loop', loop_max, seen, now + math.max(ttl, 1), reaped, window, 'block', 0}
  end
end

local day_spent, day_reserved = (dv[1] or 0) + 0, (dv[2] or 0) + 0
local month_spent, month_reserved = (mv[1] or 0) + 0, (mv[2] or 0) + 0

-- The binding limit is the one with the least left: day, month, or the workflow run, whose cap
-- is the header's, else the client's run_limit, else the default (none: day and month only).
local period, limit, left, spent, reserved, resets =
  'daily', day_limit, day_limit - day_spent - day_reserved, day_spent, day_reserved, day_end
if month_limit - month_spent - month_reserved < left then
  period, limit, left, spent, reserved, resets =
    'monthly', month_limit, month_limit - month_spent - month_reserved, month_spent, month_reserved, month_end
end
local run_key, run_limit, run_used = '', nil, 0
if ARGV[23] ~= '' then
  run_key = prefix .. ':run:' .. ARGV[23]
  local rv = redis.call('HMGET', run_key, 'spent', 'reserved')
  local run_spent, run_reserved = (rv[1] or 0) + 0, (rv[2] or 0) + 0
  run_used = run_spent + run_reserved
  run_limit = (p[6] and p[6] + 0) or default_run
  if header_run then run_limit = math.min(run_limit or header_run, header_run) end
  given.run = run_limit
  if run_limit and run_limit - run_used < left then
    period, limit, left, spent, reserved, resets = 'run', run_limit, run_limit - run_used, run_spent, run_reserved, 0
  end
end

-- Auto-downgrade: once spent + reserved reaches downgrade_at percent of any limit, a request for
-- a model the policy maps to a cheaper one is reserved (and sent) as that one. The replica
-- priced the cheaper model it expected; if the policy names another, it is asked to price that.
local downgraded = ''
local at = (p[7] or default_at) + 0
local cheaper = p[8] or (ARGV[29] ~= '' and ARGV[29]) or nil
if at > 0 and cheaper and cheaper ~= 'none' then
  local over = math.max((day_spent + day_reserved) * 100 - at * day_limit,
                        (month_spent + month_reserved) * 100 - at * month_limit)
  if run_limit then over = math.max(over, run_used * 100 - at * run_limit) end
  if over >= 0 then
    if cheaper ~= fallback_priced then return {2, cheaper} end
    fixed, unit, requested, minimum = fb_fixed, fb_unit, fb_requested, fb_minimum
    downgraded = cheaper
  end
end

-- Decide.
local granted = requested
if fixed + unit * requested > left then
  granted = -1
  if minimum < requested and left >= fixed then
    local affordable = unit > 0 and div(left - fixed, unit) or requested
    if affordable >= minimum then granted = math.min(affordable, requested) end
  end
end

-- On the limit: block and stop refuse (stop has the replica answer with a completion instead
-- of an error); warn lets the whole request through and flags its lease, so its spend is also
-- counted in over_limit_spent.
local flags = ''
if granted < 0 then
  local on_limit = p[3] or ARGV[17]
  if on_limit ~= 'warn' then
    add(day_key, dv, 'refused', '1', day_end, day_grace)
    add(month_key, mv, 'refused', '1', month_end, month_grace)
    local hit, wall = ({daily = day_key, monthly = month_key, run = run_key})[period], 0
    if given[period] == limit and wall_alert_enabled(p[9]) and redis.call('HSETNX', hit, 'alert_wall', '1') == 1 then
      if period == 'run' then redis.call('EXPIRE', run_key, run_ttl) end
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[36], '*', 'client', string.match(prefix, '{(.*)}$'),
        'period', period, 'window', string.match(hit, '}:%a+:(.*)$'), 'threshold', '100', 'limit', int(limit),
        'spent', int(spent), 'cause', 'refused', 'at', int(now))
      wall = 1
    end
    return {0, period, limit, spent, resets, reaped, reserved, on_limit == 'stop' and 'stop' or 'block', wall}
  end
  granted, flags = requested, 'w'
  add(day_key, dv, 'over_limit_requests', '1', day_end, day_grace)
end

-- Write: one HINCRBY per period hash, EXPIREAT only on a key this call creates.
if downgraded ~= '' then redis.call('HINCRBY', day_key, 'downgrades', '1') end
local cost = fixed + unit * granted
local cost_text = int(cost)
local lease = 'A|' .. ARGV[6] .. '|' .. cost_text .. '|' .. day_key .. '|' .. month_key .. '|' .. run_key .. '|' .. flags
local deadline = now_ms + lease_ms
add(day_key, dv, 'reserved', cost_text, day_end, day_grace)
add(month_key, mv, 'reserved', cost_text, month_end, month_grace)
if run_key ~= '' then
  redis.call('HINCRBY', run_key, 'reserved', cost_text)
  if run_limit then redis.call('HSET', run_key, 'limit', int(run_limit)) end
  redis.call('EXPIRE', run_key, run_ttl)
end
redis.call('ZADD', KEYS[2], int(deadline), lease)
-- The leases key outlives its newest lease by the retention, so an abandoned client's
-- leases disappear. PEXPIREAT: PEXPIRE would be rewritten to it for propagation anyway.
redis.call('PEXPIREAT', KEYS[2], int(deadline + retention_ms))

return {1, granted, cost, limit, left - cost, resets, reaped, lease, flags == 'w' and 1 or 0, downgraded, period}
