-- reserve_v5 — the budget decision: reserve a request's worst case against the client's day and
-- month, or refuse. Caller: TollgateRedis/BudgetStore.swift (`reserve`, arguments built in
-- BudgetStore+Arguments.swift), which also parses the reply into TollgateCore's ReserveOutcome.
--
-- KEYS:
--   KEYS[1]  tollgate:{C}:limits  hash daily, monthly (nano-USD) and the client's policy
--   KEYS[2]  tollgate:{C}:leases  zset lease member -> deadline (ms since epoch)
--   KEYS[3]  tollgate:{C}:day:YYYY-MM-DD, KEYS[4] tollgate:{C}:month:YYYY-MM: the period the
--            replica expects for now; used only if Redis TIME is inside ARGV[8..9]
--   The outbox tollgate:{C}:alerts (written only on a refusal at the wall) is derived from
--   KEYS[1] like the run and loop keys: same hash tag, same slot (docs/redis.md, Cluster).
-- ARGV: (hot: read on every call)
--   ARGV[1]  reservation id (no '|')
--   ARGV[2]  fixed cost: the input upper bound, nano-USD, ARGV[3] cost per output token (already
--            times n choices), ARGV[4] requested output tokens, ARGV[5] minimum (== ARGV[4]: no clamping)
--   ARGV[6]  requested model
--   ARGV[7]  loop-breaker fingerprint of the request ('' = not checked)
--   ARGV[8]  from, ARGV[9] until (unix s): KEYS[3..4] are the period iff from <= now < until
--   ARGV[10] when that day ends, ARGV[11] when its month ends (unix s, DST-correct)
--   ARGV[12] clock offset seconds (0 in production; tests move time)
--   ARGV[13] default daily limit, ARGV[14] default monthly limit, nano-USD
--   ARGV[15] lease, ms; ARGV[16] how long a reaped lease is remembered, seconds
--   ARGV[17] default loop_max (0 = off); ARGV[18] default downgrade_at percent (0 = off)
-- ARGV (cold: parsed only on the path that needs them):
--   ARGV[19] settings, space-separated: UTC offset of budget.timezone in force before the next
--            change, that change (unix s; far future when none), the offset after it, day key
--            grace s (>= 3600), month key grace s, default loop_window s, run TTL s, outbox length
--            bound (XADD MAXLEN ~), default on_limit (block|warn|stop), default alert
--            thresholds (percent, comma-separated; may be empty)
--   ARGV[20] workflow run id ('' = none)
--   ARGV[21] '' or caps, space-separated, '-' for none: daily from the request's header, monthly
--            header, the run's header cap, default run_limit (nano-USD)
--   ARGV[22] default cheaper model for ARGV[6] ('' = none)
--   ARGV[23] the cheaper model the replica priced ('' = none), ARGV[24] its estimate
--            "fixed unit requested minimum" ('' when none)
-- Returns: v4's replies, field for field (BudgetStore parses both):
--   granted: {1, grantedTokens, cost, limit, remaining, resetsAt, leasesReaped, lease member,
--             overLimit (1: on_limit warn let it through), downgradedTo ('' = none), period}
--   refused: {0, "daily"|"monthly"|"run", limit, spent, resetsAt (0 for a run), leasesReaped,
--             reserved, "block"|"stop", alertFired (1: this refusal fired the 100 % alert)}
--   loop:    {0, "loop", loop_max, times seen, retry at (unix s), leasesReaped, window s, "block", 0}
--   price:   {2, cheaper model}: the policy downgrades to a model the replica did not price;
--            nothing was written; call again with that model's estimate
--
-- Why names carry a version, the key layout, the lease member and what v3/v4 changed:
-- reserve_v4.lua. v5 decides exactly what v4 decides and writes the same keys, lease members
-- and alerts, so settle_v4 settles v5's leases and settle_v5 settles v4's. It changed only what
-- a call costs Redis (docs/redis.md, "What they cost"):
--   * The replica passes the period keys and their ends for its own clock (BudgetStore,
--     TimezoneSchedule.period(at:)); two comparisons check them against TIME. Outside that
--     window (a call across midnight, a skewed clock, a DST change inside the day) the script
--     derives them from TIME as v4 did, from the settings in ARGV[19].
--   * The limits hash is read for the four fields every call needs (daily, monthly, loop_max,
--     downgrade_at); the rest of the client's policy only on the path that uses it.
--   * 4 keys and 24 arguments instead of 3 and 36: config that only a refusal, a loop, a run,
--     a new key or the derivation needs travels in ARGV[19] and is parsed there; `local call =
--     redis.call`; no table built on the common path; the ZADD score is a number (ZADD reads
--     doubles).
-- All amounts stay below 2^53 (Lua numbers are doubles); numbers go back to Redis through
-- string.format('%d') (tostring and Redis 7.2+ write 1e+15). Three phases: read everything,
-- decide, then write everything or nothing.

local call = redis.call
local id = ARGV[1]
-- A '|' in an id would make the lease member unparseable: never settled, never released.
if id == '' or string.find(id, '|', 1, true) then
  return redis.error_reply('ERR reserve_v5: the reservation id must be non-empty without "|"')
end
local run_id = ARGV[20]
if run_id ~= '' and string.find(run_id, '|', 1, true) then
  return redis.error_reply('ERR reserve_v5: the run id must not contain "|"')
end

local t = call('TIME')
local now = t[1] + 0
if ARGV[12] ~= '0' then now = now + ARGV[12] end
local now_ms = now * 1000 + (t[2] - t[2] % 1000) / 1000

-- The numbers of ARGV, `+ 0` here: a garbled one fails before anything is written.
local fixed, unit, requested, minimum = ARGV[2] + 0, ARGV[3] + 0, ARGV[4] + 0, ARGV[5] + 0
local lease_ms, retention_ms = ARGV[15] + 0, ARGV[16] * 1000
local settings = nil
local function setting(i)
  if not settings then
    settings = {string.match(ARGV[19],
      '^(%-?%d+) (%d+) (%-?%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%a+) ([%d,]*)$')}
    if not settings[1] then return error('reserve_v5: ARGV[19] is not "tz change tz_after day_grace month_grace loop_window run_ttl outbox on_limit thresholds"') end
  end
  return settings[i]
end
local caps = ARGV[21]
local header_daily, header_monthly, header_run, default_run
if caps ~= '' then
  local d, m, r, dr = string.match(caps, '^(%S+) (%S+) (%S+) (%S+)$')
  if not d then return redis.error_reply('ERR reserve_v5: ARGV[21] is not "daily monthly run default_run"') end
  header_daily, header_monthly = d ~= '-' and d + 0 or nil, m ~= '-' and m + 0 or nil
  header_run, default_run = r ~= '-' and r + 0 or nil, dr ~= '-' and dr + 0 or nil
end
local fallback_priced = ARGV[23]
local fb_fixed, fb_unit, fb_requested, fb_minimum
if fallback_priced ~= '' then
  fb_fixed, fb_unit, fb_requested, fb_minimum = string.match(ARGV[24], '^(%d+) (%d+) (%d+) (%d+)$')
  if not fb_fixed then return redis.error_reply('ERR reserve_v5: ARGV[24] is not "fixed unit requested minimum"') end
end

-- The period: the replica's, when Redis TIME agrees with it (nearly always).
local day_key, month_key = KEYS[3], KEYS[4]
local day_end, month_end
if now >= ARGV[8] + 0 and now < ARGV[9] + 0 then
  -- Kept as text: the reply carries them as is (BudgetStore reads a bulk number), and only a
  -- new key's expiry does arithmetic with them.
  day_end, month_end = ARGV[10], ARGV[11]
else
  -- v4's derivation from TIME (its comments say why): the offset in force by Redis TIME,
  -- Howard Hinnant's civil-from-days, midnights in the offset in force at each midnight.
  local function div(a, b) return (a - a % b) / b end
  local tz, change, tz_after = setting(1) + 0, setting(2) + 0, setting(3) + 0
  if now >= change then tz = tz_after end
  local function midnight(local_days)
    local at = local_days * 86400 - tz
    if at < change then return at end
    at = local_days * 86400 - tz_after
    if at < change then return change end
    return at
  end
  local days = div(now + tz, 86400)
  local z = days + 719468
  local era = div(z, 146097)
  local doe = z - era * 146097
  local yoe = div(doe - div(doe, 1460) + div(doe, 36524) - div(doe, 146096), 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + div(yoe, 4) - div(yoe, 100))
  local mp = div(5 * doy + 2, 153)
  local d = doy - div(153 * mp + 2, 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  local prefix = string.sub(KEYS[1], 1, -8)
  local date = string.format('%04d-%02d-%02d', y, m, d)
  day_key = prefix .. ':day:' .. date
  month_key = prefix .. ':month:' .. string.sub(date, 1, 7)
  day_end = midnight(days + 1)
  -- days_from_civil(y, m + 1, 1)
  local ny, nm = y, m + 1
  if nm == 13 then ny, nm = y + 1, 1 end
  if nm <= 2 then ny = ny - 1 end
  era = div(ny, 400)
  yoe = ny - era * 400
  mp = nm > 2 and nm - 3 or nm + 9
  month_end = midnight(era * 146097 + yoe * 365 + div(yoe, 4) - div(yoe, 100) + div(153 * mp + 2, 5) - 719468)
end

-- Reap leases whose replica never settled (crash, partition): each is charged its reservation,
-- since the provider may have billed it. Only when the earliest deadline is due; bounded per
-- call. Runs before the reads below, so what it moves in today's keys is already in what they see.
local reaped = 0
-- One ZRANGEBYSCORE is both the check and the scan: empty (the zset's first score is not due)
-- is nearly always its answer. A ZCOUNT first would cost less when nothing is due, but it is not
-- in the ACL docs/operations.md gives operators, and a command added there breaks the replicas
-- of every deployment that copied the old list.
local expired = call('ZRANGEBYSCORE', KEYS[2], '-inf', string.format('%d', now_ms), 'LIMIT', '0', '32')
if #expired > 0 then
  local charged, periods, remembered, over = {}, {}, {}, {}
  local keep_until = string.format('%d', now_ms + retention_ms)
  for _, member in ipairs(expired) do
    local cost, dk, mk, rk, flags = string.match(member, '^A|[^|]+|(%d+)|([^|]+)|([^|]+)|([^|]*)|(%a*)$')
    if not cost then
      cost, dk, mk = string.match(member, '^A|[^|]+|(%d+)|([^|]+)|([^|]+)$')
      rk, flags = '', ''
    end
    if cost then
      for _, k in ipairs({dk, mk, rk}) do
        if k ~= '' then
          if not charged[k] then charged[k] = 0; periods[#periods + 1] = k end
          charged[k] = charged[k] + cost
        end
      end
      if flags == 'w' then
        over[dk] = (over[dk] or 0) + cost
        over[mk] = (over[mk] or 0) + cost
      end
      remembered[#remembered + 1] = keep_until
      remembered[#remembered + 1] = 'C' .. string.sub(member, 2)
      reaped = reaped + 1
    end
    -- Anything else here is a C|… or R|… member past its retention: forgotten.
  end
  call('ZREM', KEYS[2], unpack(expired))
  if reaped > 0 then
    call('ZADD', KEYS[2], unpack(remembered))
    for _, k in ipairs(periods) do
      -- A period whose key already expired is over; its counters are not recreated.
      if call('EXISTS', k) == 1 then
        call('HINCRBY', k, 'reserved', string.format('%d', -charged[k]))
        call('HINCRBY', k, 'spent', string.format('%d', charged[k]))
        if over[k] then call('HINCRBY', k, 'over_limit_spent', string.format('%d', over[k])) end
      end
    end
    -- May create today's key; the reads below still see it as new and give it its expiry.
    call('HINCRBY', day_key, 'leases_reaped', reaped)
  end
end

-- Read. A key with neither spent nor reserved is taken for new and given its expiry.
local p = call('HMGET', KEYS[1], 'daily', 'monthly', 'loop_max', 'downgrade_at')
-- The rest of the client's policy, read on the path that needs it (the hash is not written here).
local function own(field) return call('HGET', KEYS[1], field) or nil end
local prefix = string.sub(KEYS[1], 1, -8)
local given_daily = (p[1] or ARGV[13]) + 0
local given_monthly = (p[2] or ARGV[14]) + 0
-- Header budgets only ever lower a limit; alerts are about the limits the client was given.
local day_limit, month_limit = given_daily, given_monthly
if header_daily and header_daily < day_limit then day_limit = header_daily end
if header_monthly and header_monthly < month_limit then month_limit = header_monthly end
local dv = call('HMGET', day_key, 'spent', 'reserved')
local mv = call('HMGET', month_key, 'spent', 'reserved')
local day_new, month_new = not (dv[1] or dv[2]), not (mv[1] or mv[2])

-- Loop breaker: the same request more than loop_max times within loop_window seconds is refused.
local loop_max = (p[3] or ARGV[17]) + 0
if loop_max > 0 and ARGV[7] ~= '' then
  local window = (own('loop_window') or setting(6)) + 0
  local loop_key = prefix .. ':loop:' .. ARGV[7]
  local seen = call('INCR', loop_key)
  if seen == 1 then call('EXPIRE', loop_key, window) end
  if seen > loop_max then
    call('HINCRBY', day_key, 'loop_trips', '1')
    if day_new then call('EXPIREAT', day_key, string.format('%d', day_end + setting(4))) end
    local ttl = call('TTL', loop_key)
    return {0, 'loop', loop_max, seen, now + math.max(ttl, 1), reaped, window, 'block', 0}
  end
end

local day_spent, day_reserved = (dv[1] or 0) + 0, (dv[2] or 0) + 0
local month_spent, month_reserved = (mv[1] or 0) + 0, (mv[2] or 0) + 0

-- The binding limit is the one with the least left: day, month, or the workflow run.
local period, limit, spent, reserved, resets = 'daily', day_limit, day_spent, day_reserved, day_end
local left = day_limit - day_spent - day_reserved
if month_limit - month_spent - month_reserved < left then
  period, limit, spent, reserved, resets = 'monthly', month_limit, month_spent, month_reserved, month_end
  left = month_limit - month_spent - month_reserved
end
local run_key, run_limit, run_used, given_run = '', nil, 0, nil
if run_id ~= '' then
  run_key = prefix .. ':run:' .. run_id
  local rv = call('HMGET', run_key, 'spent', 'reserved')
  local run_spent, run_reserved = (rv[1] or 0) + 0, (rv[2] or 0) + 0
  run_used = run_spent + run_reserved
  local own_run = own('run_limit')
  run_limit = (own_run and own_run + 0) or default_run
  if header_run then run_limit = math.min(run_limit or header_run, header_run) end
  given_run = run_limit
  if run_limit and run_limit - run_used < left then
    period, limit, spent, reserved, resets = 'run', run_limit, run_spent, run_reserved, 0
    left = run_limit - run_used
  end
end

-- Auto-downgrade (reserve_v4.lua): past downgrade_at percent of any limit, a mapped model is
-- reserved as its cheaper one, which the replica must have priced.
local downgraded = ''
local at = (p[4] or ARGV[18]) + 0
if at > 0 then
  local cheaper = own('downgrade:' .. ARGV[6]) or (ARGV[22] ~= '' and ARGV[22]) or nil
  if cheaper and cheaper ~= 'none' then
    local over = math.max((day_spent + day_reserved) * 100 - at * day_limit,
                          (month_spent + month_reserved) * 100 - at * month_limit)
    if run_limit then over = math.max(over, run_used * 100 - at * run_limit) end
    if over >= 0 then
      if cheaper ~= fallback_priced then return {2, cheaper} end
      fixed, unit, requested, minimum = fb_fixed + 0, fb_unit + 0, fb_requested + 0, fb_minimum + 0
      downgraded = cheaper
    end
  end
end

-- Decide.
local granted = requested
if fixed + unit * requested > left then
  granted = -1
  if minimum < requested and left >= fixed then
    local affordable = unit > 0 and (left - fixed - (left - fixed) % unit) / unit or requested
    if affordable >= minimum then granted = math.min(affordable, requested) end
  end
end

-- On the limit: block and stop refuse; warn lets the request through and flags its lease.
local flags = ''
if granted < 0 then
  local on_limit = own('on_limit') or setting(9)
  if on_limit ~= 'warn' then
    call('HINCRBY', day_key, 'refused', '1')
    if day_new then call('EXPIREAT', day_key, string.format('%d', day_end + setting(4))) end
    call('HINCRBY', month_key, 'refused', '1')
    if month_new then call('EXPIREAT', month_key, string.format('%d', month_end + setting(5))) end
    local hit, given = day_key, given_daily
    if period == 'monthly' then hit, given = month_key, given_monthly elseif period == 'run' then hit, given = run_key, given_run end
    -- The wall alert (reserve_v4.lua): at a limit the client was given, when 100 is one of its
    -- thresholds, once per window.
    local wall, enabled = 0, false
    if given == limit then
      for th in string.gmatch(own('alerts') or setting(10), '%d+') do
        if th + 0 == 100 then enabled = true end
      end
    end
    if enabled and call('HSETNX', hit, 'alert_wall', '1') == 1 then
      if period == 'run' then call('EXPIRE', run_key, setting(7)) end
      call('XADD', prefix .. ':alerts', 'MAXLEN', '~', setting(8), '*', 'client', string.match(KEYS[1], '{(.*)}:limits$'),
        'period', period, 'window', string.match(hit, '}:%a+:(.*)$'), 'threshold', '100', 'limit', string.format('%d', limit),
        'spent', string.format('%d', spent), 'cause', 'refused', 'at', string.format('%d', now))
      wall = 1
    end
    return {0, period, limit, spent, resets, reaped, reserved, on_limit == 'stop' and 'stop' or 'block', wall}
  end
  granted, flags = requested, 'w'
  call('HINCRBY', day_key, 'over_limit_requests', '1')
end

-- Write: one HINCRBY per period hash, EXPIREAT only on a key this call creates.
if downgraded ~= '' then call('HINCRBY', day_key, 'downgrades', '1') end
local cost = fixed + unit * granted
local cost_text = string.format('%d', cost)
local lease = 'A|' .. id .. '|' .. cost_text .. '|' .. day_key .. '|' .. month_key .. '|' .. run_key .. '|' .. flags
local deadline = now_ms + lease_ms
call('HINCRBY', day_key, 'reserved', cost_text)
if day_new then call('EXPIREAT', day_key, string.format('%d', day_end + setting(4))) end
call('HINCRBY', month_key, 'reserved', cost_text)
if month_new then call('EXPIREAT', month_key, string.format('%d', month_end + setting(5))) end
if run_key ~= '' then
  call('HINCRBY', run_key, 'reserved', cost_text)
  if run_limit then call('HSET', run_key, 'limit', string.format('%d', run_limit)) end
  call('EXPIRE', run_key, setting(7))
end
call('ZADD', KEYS[2], deadline, lease)
-- The leases key outlives its newest lease by the retention, so an abandoned client's leases
-- disappear. PEXPIREAT: PEXPIRE would be rewritten to it for propagation anyway.
call('PEXPIREAT', KEYS[2], string.format('%d', deadline + retention_ms))

return {1, granted, cost, limit, left - cost, resets, reaped, lease, flags == 'w' and 1 or 0, downgraded, period}
