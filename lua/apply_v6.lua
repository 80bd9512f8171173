-- apply_v6 — the reserves and settles of ONE client that a replica collected in one tick.
-- KEYS:
--   KEYS[1]  tollgate:{C}:limits, KEYS[2] tollgate:{C}:leases
--   KEYS[3]  tollgate:{C}:day:YYYY-MM-DD, KEYS[4] tollgate:{C}:month:YYYY-MM: the period the
--            replica expects for now (reserve_v5's KEYS[3..4])
-- ARGV: (the batch's)
--   ARGV[1]  from, ARGV[2] until (unix s): KEYS[3..4] are the period iff from <= now < until
--   ARGV[3]  when that day ends, ARGV[4] when its month ends (unix s, DST-correct)
--   ARGV[5]  clock offset seconds (0 in production; tests move time)
--   ARGV[6]  default daily limit, ARGV[7] default monthly limit, nano-USD
--   ARGV[8]  lease, ms; ARGV[9] how long a reaped lease is remembered, seconds
--   ARGV[10] default loop_max (0 = off); ARGV[11] default downgrade_at percent (0 = off)
--   ARGV[12] reserve_v5's ARGV[19] (settings, parsed only on the path that needs them)
--   ARGV[13] settle_v5's ARGV[4] (alert defaults, parsed only when an alert may be due)
--   ARGV[14…] the operations, in order, each a tag and its arguments:
--     'r' id fixed unit requested minimum model        a reserve without policy extras
--     'R' id fixed unit requested minimum model fingerprint run caps cheaper fb_model fb_estimate
--         a reserve with them: reserve_v5's ARGV[1..6], [7], [20], [21], [22], [23], [24]
--     'S' lease member, actual cost, model              settle_v5's ARGV[1..3]
-- Returns: one reply per operation, in order: reserve_v5's reply for a reserve, settle_v5's
--   for a settle, or an error reply for that operation alone (a bad id, run id, caps or cost:
--   nothing of it was done; the other operations are).
--
-- They come from one event-loop tick, in one call. Caller: TollgateRedis/BudgetTick.swift (the
-- coalescer; arguments in BudgetStore+Arguments.swift), which hands each caller its own reply.
--
-- Each operation is decided exactly as reserve_v5 / settle_v5 decide it, in the order given, on
-- running totals: every reserve sees the reserves and settles before it in the batch, as if
-- they had been separate calls in that order. Replies, lease members, alert marks and outbox
-- entries are v5's, so settle_v5 settles apply_v6's leases and apply_v6 settles v4/v5's.
-- What the batch shares (docs/redis.md, "What they cost"): one TIME, one reap check, one read
-- of the limits and of each period hash, and the writes, aggregated to one HINCRBY per field
-- per hash, one ZADD and one PEXPIREAT of the leases. What stays per operation: a settle's ZREM
-- of its lease (its result says whether this settle charges), a reserve's reply.
--
-- One client per call: every key carries the client's {C} hash tag (KEYS[1..4], and the
-- period, run, loop and outbox keys derived from them), so a batch is one Cluster slot.
--
-- All amounts stay below 2^53 (Lua numbers are doubles); numbers go back to Redis through
-- string.format('%d'). A period whose key has expired is over and is not recreated (settle).

-- Written for what Redis's Lua charges (docs/redis.md, "What they cost"): a closure costs ~300
-- instructions per captured local, a table ~2k, a call a few hundred. So the operations run
-- inline in the main chunk (`repeat … until true`, `break` ends one), the few helpers capture
-- little, the state of the hashes a batch touches lives in one flat array, and the path of an
-- ordinary reserve or settle builds no table but its reply.

local call = redis.call
local fmt = string.format
local prefix = string.sub(KEYS[1], 1, -8)

-- The period hashes this batch touches (nearly always today's day and month): K[j] is the key,
-- V[b + 1 … b + 11] with b = (j - 1) * 11 its state:
--   +1 spent, +2 reserved (running), +3 alert_next as a number (false: none), +4 new (neither
--   spent nor reserved when read: a reserve gives it its expiry), +5 exists (1 yes, -1 no, 0 not
--   asked),
--   +6 … +9 the pending HINCRBY of reserved, spent, requests, over_limit_spent (false: none),
--   +10, +11 the expiry to set once written (command, at).
local K, nk = {false, false}, 0
local V = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
local function slot(k)
  for j = 1, nk do
    if K[j] == k then return (j - 1) * 11 end
  end
  local v = call('HMGET', k, 'spent', 'reserved', 'alert_next')
  nk = nk + 1
  K[nk] = k
  local b = (nk - 1) * 11
  V[b + 1], V[b + 2], V[b + 3] = (v[1] or 0) + 0, (v[2] or 0) + 0, v[3] and v[3] + 0 or false
  V[b + 4], V[b + 5] = not (v[1] or v[2]), (v[1] or v[2] or v[3]) and 1 or 0
  V[b + 6], V[b + 7], V[b + 8], V[b + 9], V[b + 10], V[b + 11] = false, false, false, false, false, false
  return b
end
-- A period whose key has expired is over and is not recreated by a settle (a write earlier in
-- the batch has created it).
local function alive(b)
  if V[b + 5] == 0 then V[b + 5] = call('EXISTS', K[b / 11 + 1]) == 1 and 1 or -1 end
  return V[b + 5] == 1
end
-- A pending HINCRBY of field f (+6 reserved, +7 spent, +8 requests, +9 over_limit_spent).
local function bump(b, f, delta)
  V[b + f] = (V[b + f] or 0) + delta
  if f == 6 then V[b + 2] = V[b + 2] + delta elseif f == 7 then V[b + 1] = V[b + 1] + delta end
  V[b + 5] = 1
end
-- The other counters (refused, loop_trips, model:<name>, …): (b, field, delta) triples, summed.
local X, nx = {}, 0
local function rare(b, field, delta)
  V[b + 5] = 1
  for j = 1, nx, 3 do
    if X[j] == b and X[j + 1] == field then
      X[j + 2] = X[j + 2] + delta
      return
    end
  end
  X[nx + 1], X[nx + 2], X[nx + 3] = b, field, delta
  nx = nx + 3
end

local settings = nil
local function setting(i)
  if not settings then
    settings = {string.match(ARGV[12],
      '^(%-?%d+) (%d+) (%-?%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%a+) ([%d,]*)$')}
    if not settings[1] then return error('apply_v6: ARGV[12] is not "tz change tz_after day_grace month_grace loop_window run_ttl outbox on_limit thresholds"') end
  end
  return settings[i]
end
local function own(field) return call('HGET', KEYS[1], field) or nil end

-- The batch's shape, checked before anything is written: a garbled one changes nothing.
local i, n = 14, #ARGV
while i <= n do
  local tag = ARGV[i]
  local w = tag == 'S' and 4 or tag == 'r' and 7 or tag == 'R' and 13 or nil
  if not w or i + w - 1 > n then
    return redis.error_reply('ERR apply_v6: ARGV[' .. i .. '] does not start an operation (r, R or S and its arguments)')
  end
  i = i + w
end

local t, now, now_ms -- Redis TIME, read on the first reserve (or alert)
local day_key, month_key, day_end, month_end
local p -- the limits hash's four hot fields as numbers (defaults applied), read on the first reserve
local leases, nl = {}, 0 -- ZADD's arguments: deadline, member, …
local deadline -- the leases' score, as text: the batch's reserves share now
local NEVER = 9007199254740992 -- 2^53: no threshold left in this window
local limits, thresholds, defaults -- settle alerts: read on the first that may be due
local check_alerts -- defined when first needed (settle_v5.lua's)
local last_model, last_field
local replies, nr = {}, 0
i = 14
while i <= n do
  local tag, reply = ARGV[i], nil
  repeat
    if tag ~= 'S' then
      -- A reserve: reserve_v5's decision on the running totals. ARGV[i + 1 …]: id fixed unit
      -- requested minimum model, and for 'R': fingerprint run caps cheaper fb_model fb_estimate.
      local id = ARGV[i + 1]
      if id == '' or string.find(id, '|', 1, true) then
        reply = redis.error_reply('ERR apply_v6: the reservation id must be non-empty without "|"')
        break
      end
      local fingerprint, run_id, caps, default_cheaper, fallback_priced = '', '', '', '', ''
      if tag == 'R' then
        fingerprint, run_id, caps, default_cheaper, fallback_priced = ARGV[i + 7], ARGV[i + 8], ARGV[i + 9], ARGV[i + 10], ARGV[i + 11]
      end
      if run_id ~= '' and string.find(run_id, '|', 1, true) then
        reply = redis.error_reply('ERR apply_v6: the run id must not contain "|"')
        break
      end
      local fixed, unit, requested, minimum = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
      if not (fixed and unit and requested and minimum) then
        reply = redis.error_reply('ERR apply_v6: a reserve\'s cost and tokens must be numbers')
        break
      end
      local header_daily, header_monthly, header_run, default_run
      if caps ~= '' then
        local d, m, r, dr = string.match(caps, '^(%S+) (%S+) (%S+) (%S+)$')
        if not d then
          reply = redis.error_reply('ERR apply_v6: caps are not "daily monthly run default_run"')
          break
        end
        header_daily, header_monthly = d ~= '-' and tonumber(d) or nil, m ~= '-' and tonumber(m) or nil
        header_run, default_run = r ~= '-' and tonumber(r) or nil, dr ~= '-' and tonumber(dr) or nil
      end
      local fb_fixed, fb_unit, fb_requested, fb_minimum
      if fallback_priced ~= '' then
        fb_fixed, fb_unit, fb_requested, fb_minimum = string.match(ARGV[i + 12], '^(%d+) (%d+) (%d+) (%d+)$')
        if not fb_fixed then
          reply = redis.error_reply('ERR apply_v6: the fallback estimate is not "fixed unit requested minimum"')
          break
        end
      end

      -- The batch's first reserve: now, its period, the reaper, the limits.
      local reaped = 0
      if not p then
        t = call('TIME')
        now = t[1] + 0
        if ARGV[5] ~= '0' then now = now + ARGV[5] end
        now_ms = now * 1000 + (t[2] - t[2] % 1000) / 1000
        day_key, month_key = KEYS[3], KEYS[4]
        if now >= ARGV[1] + 0 and now < ARGV[2] + 0 then
          day_end, month_end = ARGV[3], ARGV[4]
        else
          -- Outside the replica's window: reserve_v4's derivation from TIME (its comments say why).
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
          local date = fmt('%04d-%02d-%02d', y, m, d)
          day_key = prefix .. ':day:' .. date
          month_key = prefix .. ':month:' .. string.sub(date, 1, 7)
          day_end = midnight(days + 1)
          local ny, nm = y, m + 1
          if nm == 13 then ny, nm = y + 1, 1 end
          if nm <= 2 then ny = ny - 1 end
          era = div(ny, 400)
          yoe = ny - era * 400
          mp = nm > 2 and nm - 3 or nm + 9
          month_end = midnight(era * 146097 + yoe * 365 + div(yoe, 4) - div(yoe, 100) + div(153 * mp + 2, 5) - 719468)
        end
        -- Reap leases whose replica never settled (reserve_v5.lua), once per batch, before its
        -- first reserve decides; what it charges goes through the running totals. The first
        -- reserve's reply reports them, as one call's would.
        local expired = call('ZRANGEBYSCORE', KEYS[2], '-inf', fmt('%d', now_ms), 'LIMIT', '0', '32')
        if #expired > 0 then
          local charged, periods, remembered, over = {}, {}, {}, {}
          local keep_until = fmt('%d', now_ms + ARGV[9] * 1000)
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
              local b = slot(k)
              if alive(b) then
                bump(b, 6, -charged[k])
                bump(b, 7, charged[k])
                if over[k] then bump(b, 9, over[k]) end
              end
            end
            rare(slot(day_key), 'leases_reaped', reaped)
          end
        end
        p = call('HMGET', KEYS[1], 'daily', 'monthly', 'loop_max', 'downgrade_at')
        p[1], p[2], p[3], p[4] = (p[1] or ARGV[6]) + 0, (p[2] or ARGV[7]) + 0, (p[3] or ARGV[10]) + 0, (p[4] or ARGV[11]) + 0
      end
      local given_daily, given_monthly = p[1], p[2]
      local day_limit, month_limit = given_daily, given_monthly
      if header_daily and header_daily < day_limit then day_limit = header_daily end
      if header_monthly and header_monthly < month_limit then month_limit = header_monthly end
      local db, mb = slot(day_key), slot(month_key)

      local loop_max = p[3]
      if loop_max > 0 and fingerprint ~= '' then
        local window = (own('loop_window') or setting(6)) + 0
        local loop_key = prefix .. ':loop:' .. fingerprint
        local seen = call('INCR', loop_key)
        if seen == 1 then call('EXPIRE', loop_key, window) end
        if seen > loop_max then
          rare(db, 'loop_trips', 1)
          if V[db + 4] and not V[db + 10] then V[db + 10], V[db + 11] = 'EXPIREAT', day_end + setting(4) end
          local ttl = call('TTL', loop_key)
          reply = {0, 'loop', loop_max, seen, now + math.max(ttl, 1), reaped, window, 'block', 0}
          break
        end
      end

      local day_spent, day_reserved = V[db + 1], V[db + 2]
      local month_spent, month_reserved = V[mb + 1], V[mb + 2]
      local period, limit, spent, reserved, resets = 'daily', day_limit, day_spent, day_reserved, day_end
      local left = day_limit - day_spent - day_reserved
      if month_limit - month_spent - month_reserved < left then
        period, limit, spent, reserved, resets = 'monthly', month_limit, month_spent, month_reserved, month_end
        left = month_limit - month_spent - month_reserved
      end
      local run_key, rb, run_limit, run_used, given_run = '', nil, nil, 0, nil
      if run_id ~= '' then
        run_key = prefix .. ':run:' .. run_id
        rb = slot(run_key)
        run_used = V[rb + 1] + V[rb + 2]
        local own_run = own('run_limit')
        run_limit = (own_run and own_run + 0) or default_run
        if header_run then run_limit = math.min(run_limit or header_run, header_run) end
        given_run = run_limit
        if run_limit and run_limit - run_used < left then
          period, limit, spent, reserved, resets = 'run', run_limit, V[rb + 1], V[rb + 2], 0
          left = run_limit - run_used
        end
      end

      local downgraded = ''
      local at = p[4]
      if at > 0 then
        local cheaper = own('downgrade:' .. ARGV[i + 6]) or (default_cheaper ~= '' and default_cheaper) or nil
        if cheaper and cheaper ~= 'none' then
          local over = math.max((day_spent + day_reserved) * 100 - at * day_limit,
                                (month_spent + month_reserved) * 100 - at * month_limit)
          if run_limit then over = math.max(over, run_used * 100 - at * run_limit) end
          if over >= 0 then
            if cheaper ~= fallback_priced then
              reply = {2, cheaper}
              break
            end
            fixed, unit, requested, minimum = fb_fixed + 0, fb_unit + 0, fb_requested + 0, fb_minimum + 0
            downgraded = cheaper
          end
        end
      end

      local granted = requested
      if fixed + unit * requested > left then
        granted = -1
        if minimum < requested and left >= fixed then
          local affordable = unit > 0 and (left - fixed - (left - fixed) % unit) / unit or requested
          if affordable >= minimum then granted = math.min(affordable, requested) end
        end
      end

      local flags = ''
      if granted < 0 then
        local on_limit = own('on_limit') or setting(9)
        if on_limit ~= 'warn' then
          rare(db, 'refused', 1)
          if V[db + 4] and not V[db + 10] then V[db + 10], V[db + 11] = 'EXPIREAT', day_end + setting(4) end
          rare(mb, 'refused', 1)
          if V[mb + 4] and not V[mb + 10] then V[mb + 10], V[mb + 11] = 'EXPIREAT', month_end + setting(5) end
          local hit, given = day_key, given_daily
          if period == 'monthly' then hit, given = month_key, given_monthly elseif period == 'run' then hit, given = run_key, given_run end
          local wall, enabled = 0, false
          if given == limit then
            for th in string.gmatch(own('alerts') or setting(10), '%d+') do
              if th + 0 == 100 then enabled = true end
            end
          end
          if enabled and call('HSETNX', hit, 'alert_wall', '1') == 1 then
            if period == 'run' then call('EXPIRE', run_key, setting(7)) end
            call('XADD', prefix .. ':alerts', 'MAXLEN', '~', setting(8), '*', 'client', string.match(KEYS[1], '{(.*)}:limits$'),
              'period', period, 'window', string.match(hit, '}:%a+:(.*)$'), 'threshold', '100', 'limit', fmt('%d', limit),
              'spent', fmt('%d', spent), 'cause', 'refused', 'at', fmt('%d', now))
            wall = 1
          end
          reply = {0, period, limit, spent, resets, reaped, reserved, on_limit == 'stop' and 'stop' or 'block', wall}
          break
        end
        granted, flags = requested, 'w'
        rare(db, 'over_limit_requests', 1)
      end

      if downgraded ~= '' then rare(db, 'downgrades', 1) end
      local cost = fixed + unit * granted
      local cost_text = fmt('%d', cost)
      local lease = 'A|' .. id .. '|' .. cost_text .. '|' .. day_key .. '|' .. month_key .. '|' .. run_key .. '|' .. flags
      bump(db, 6, cost)
      if V[db + 4] and not V[db + 10] then V[db + 10], V[db + 11] = 'EXPIREAT', day_end + setting(4) end
      bump(mb, 6, cost)
      if V[mb + 4] and not V[mb + 10] then V[mb + 10], V[mb + 11] = 'EXPIREAT', month_end + setting(5) end
      if rb then
        bump(rb, 6, cost)
        if run_limit then call('HSET', run_key, 'limit', fmt('%d', run_limit)) end
        if not V[rb + 10] then V[rb + 10], V[rb + 11] = 'EXPIRE', setting(7) end
      end
      if not deadline then deadline = fmt('%d', now_ms + ARGV[8]) end
      leases[nl + 1], leases[nl + 2] = deadline, lease
      nl = nl + 2
      reply = {1, granted, cost, limit, left - cost, resets, reaped, lease, flags == 'w' and 1 or 0, downgraded, period}
    else
      -- A settle: settle_v5's, on the running totals. ARGV[i + 1 …]: member, actual, model.
      local member, actual, model = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
      if not string.find(actual, '^%d+$') or #actual > 16 then
        reply = redis.error_reply('ERR apply_v6: the actual cost must be a decimal integer >= 0')
        break
      end
      local cost, dk, mk, rk, flags = string.match(member, '^A|[^|]+|(%d+)|([^|]+)|([^|]+)|([^|]*)|(%a*)$')
      if not cost then
        cost, dk, mk = string.match(member, '^A|[^|]+|(%d+)|([^|]+)|([^|]+)$')
        rk, flags = '', ''
      end
      if not cost then
        reply = {0, 0, 0, 0}
        break
      end
      local status, spent, release
      local amount = actual + 0
      if call('ZREM', KEYS[2], member) == 1 then
        status, spent = 1, amount
        if cost ~= '0' then release = -cost end
      else
        local rest = string.sub(member, 2)
        if call('ZREM', KEYS[2], 'C' .. rest) == 1 then
          status, spent = 2, amount - cost
        elseif call('ZREM', KEYS[2], 'R' .. rest) == 1 then
          status, spent = 2, amount
        else
          reply = {0, 0, 0, 0}
          break
        end
      end
      local model_field = nil
      if model ~= '' then
        if model ~= last_model then last_model, last_field = model, 'model:' .. model end
        model_field = last_field
      end
      local fired = 0
      local db, mb, rb = slot(dk), slot(mk), rk ~= '' and slot(rk) or false
      local day_alive, month_alive, run_alive = alive(db), alive(mb), rb and alive(rb)
      -- Each period: the day (1), the month (2), the workflow run (3).
      for which = 1, 3 do
        local b = which == 1 and day_alive and db or which == 2 and month_alive and mb or which == 3 and run_alive and rb
        if b then
          if release then bump(b, 6, release) end
          bump(b, 7, spent)
          bump(b, 8, 1)
          if flags == 'w' and which < 3 then bump(b, 9, spent) end
          if which == 1 and model_field then rare(b, model_field, amount) end
          local next_at = V[b + 3]
          if not next_at or V[b + 1] >= next_at then
            if not check_alerts then
              -- settle_v5.lua's, on the running spend; made on the first alert that may be due.
              check_alerts = function(b, which, spent_now)
                local k = K[b / 11 + 1]
                if not limits then
                  defaults = {string.match(ARGV[13], '^(%d+) (%d+) (%d+) ([%d,]*)$')}
                  if not defaults[1] then error('apply_v6: ARGV[13] is not "daily monthly outbox thresholds"') end
                  limits = call('HMGET', KEYS[1], 'daily', 'monthly', 'alerts')
                  thresholds = {}
                  for th in string.gmatch(limits[3] or defaults[4], '%d+') do thresholds[#thresholds + 1] = th + 0 end
                  table.sort(thresholds)
                end
                local state = call('HMGET', k, 'alerted', 'alert_wall', 'limit')
                local limit = (which == 1 and (limits[1] or defaults[1])) or (which == 2 and (limits[2] or defaults[2])) or state[3]
                limit = limit and limit + 0 or 0
                local alerted, upcoming, count = (state[1] or 0) + 0, NEVER, 0
                if limit > 0 then
                  for _, th in ipairs(thresholds) do
                    if th > alerted then
                      if spent_now * 100 < th * limit then
                        upcoming = math.ceil(th * limit / 100)
                        break
                      end
                      alerted = th
                      if not (th == 100 and state[2]) then
                        if not t then t = call('TIME') end
                        call('XADD', prefix .. ':alerts', 'MAXLEN', '~', defaults[3], '*', 'client', string.match(KEYS[1], '{(.*)}'),
                          'period', ({'daily', 'monthly', 'run'})[which], 'window', string.match(k, '}:%a+:(.*)$'), 'threshold', th,
                          'limit', fmt('%d', limit), 'spent', fmt('%d', spent_now), 'cause', 'spent', 'at', t[1])
                        count = count + 1
                      end
                    end
                  end
                end
                V[b + 3] = upcoming
                if alerted >= 100 and not state[2] then
                  -- Spend reached the wall: a refusal after this must not fire the 100 % alert again.
                  call('HSET', k, 'alerted', alerted, 'alert_next', fmt('%d', upcoming), 'alert_wall', '1')
                else
                  call('HSET', k, 'alerted', alerted, 'alert_next', fmt('%d', upcoming))
                end
                return count
              end
            end
            fired = fired + check_alerts(b, which, V[b + 1])
          end
        end
      end
      reply = {status, status == 1 and cost + 0 or 0, amount, fired}
    end
  until true
  nr = nr + 1
  replies[nr] = reply
  i = i + (tag == 'S' and 4 or tag == 'r' and 7 or 13)
end

-- Write: one HINCRBY per counter per hash, the expiries of keys this batch created, then the
-- leases (one ZADD, one PEXPIREAT: they share now).
for j = 1, nk do
  local b, k = (j - 1) * 11, K[j]
  if V[b + 6] then call('HINCRBY', k, 'reserved', fmt('%d', V[b + 6])) end
  if V[b + 7] then call('HINCRBY', k, 'spent', fmt('%d', V[b + 7])) end
  if V[b + 8] then call('HINCRBY', k, 'requests', V[b + 8]) end
  if V[b + 9] then call('HINCRBY', k, 'over_limit_spent', fmt('%d', V[b + 9])) end
end
for j = 1, nx, 3 do call('HINCRBY', K[X[j] / 11 + 1], X[j + 1], fmt('%d', X[j + 2])) end
for j = 1, nk do
  local b = (j - 1) * 11
  if V[b + 10] then call(V[b + 10], K[j], fmt('%d', V[b + 11])) end
end
if nl > 0 then
  call('ZADD', KEYS[2], unpack(leases))
  call('PEXPIREAT', KEYS[2], fmt('%d', now_ms + ARGV[8] + ARGV[9] * 1000))
end
return replies
