-- settle_v5 — turn a reservation into real spend, and fire the budget alerts it crosses.
-- KEYS:
--   KEYS[1]  tollgate:{C}:leases
--   Only when an alert may be due, derived from KEYS[1] (same hash tag, same slot):
--   tollgate:{C}:limits (read) and the client's alert outbox tollgate:{C}:alerts (XADD).
-- ARGV:
--   ARGV[1]  lease member "A|<reservation id>|<cost>|<day key>|<month key>|<run key>|<flags>"
--            as reserve_v3/v4/v5 returned it (or the five-field one of reserve_v2)
--   ARGV[2]  actual cost, nano-USD (decimal integer >= 0)
--   ARGV[3]  the model billed ('' = unknown): its spend is also counted in the day's model:<name>
--   ARGV[4]  read only when an alert may be due, space-separated: default daily limit, default
--            monthly limit (nano-USD), outbox length bound (XADD MAXLEN ~), default alert
--            thresholds (percent, comma-separated; may be empty)
-- Returns:
--   {status, reservedCost, charged, alertsFired} (settle_v4's reply): status 1 settled
--   (reservedCost released), 2 settled after reap (reservedCost 0), 0 unknown lease (already
--   settled, never reserved, or reaped longer ago than the retention: nothing charged, nothing
--   fired). charged is the actual cost now on the books for this request (the replica adds it to
--   the top-spender sets); alertsFired counts the alert thresholds this settle crossed.
--
-- Caller: TollgateRedis/BudgetStore.swift (`settle`); key layout, the lease member and why names
-- carry a version: reserve_v4.lua; exactly-once, the A|/C|/R| members and the alert marks:
-- settle_v4.lua.
--
-- v5 charges, marks and fires exactly as settle_v4 (they settle each other's leases, and either
-- fires a crossing the other settled). It changed what a call costs Redis (docs/redis.md):
--   * One EXISTS for all the lease's periods instead of one each (a period whose key expired is
--     over and is not recreated: only when one is missing does it ask per key).
--   * No release written for a free lease, and no number formatted on the common path: the
--     release is '-' .. the member's own digits.
--   * 1 key and 4 arguments instead of 3 and 7; `local call = redis.call`; no table built unless an
--     alert may be due.

local call = redis.call
local actual = ARGV[2]
-- Checked before anything changes: HINCRBY refusing it after the ZREM would lose the charge.
if not string.find(actual, '^%d+$') or #actual > 16 then
  return redis.error_reply('ERR settle_v5: the actual cost must be a decimal integer >= 0')
end
local member = ARGV[1]
local cost, dk, mk, rk, flags = string.match(member, '^A|[^|]+|(%d+)|([^|]+)|([^|]+)|([^|]*)|(%a*)$')
if not cost then
  cost, dk, mk = string.match(member, '^A|[^|]+|(%d+)|([^|]+)|([^|]+)$')
  rk, flags = '', ''
end
if not cost then return {0, 0, 0, 0} end

-- What to add to spent, and what to release. A free lease releases nothing (v2 wrote "-0",
-- which HINCRBY rejects after the ZREM).
local status, spent, release
if call('ZREM', KEYS[1], member) == 1 then
  status, spent = 1, actual
  if cost ~= '0' then release = '-' .. cost end
else
  local rest = string.sub(member, 2)
  if call('ZREM', KEYS[1], 'C' .. rest) == 1 then
    -- Both below 2^53, so the difference is exact.
    status, spent = 2, string.format('%d', actual - cost)
  elseif call('ZREM', KEYS[1], 'R' .. rest) == 1 then
    status, spent = 2, actual
  else
    return {0, 0, 0, 0}
  end
end

-- Alerts (settle_v4.lua): nothing below runs unless a period's spend reached its `alert_next`.
local NEVER = 9007199254740992 -- 2^53: no threshold left in this window
local limits, thresholds, defaults, now
local fired = 0
local function check_alerts(k, i, spent_now)
  if not limits then
    defaults = {string.match(ARGV[4], '^(%d+) (%d+) (%d+) ([%d,]*)$')}
    if not defaults[1] then error('settle_v5: ARGV[4] is not "daily monthly outbox thresholds"') end
    limits = call('HMGET', string.sub(KEYS[1], 1, -7) .. 'limits', 'daily', 'monthly', 'alerts')
    thresholds = {}
    for t in string.gmatch(limits[3] or defaults[4], '%d+') do thresholds[#thresholds + 1] = t + 0 end
    table.sort(thresholds)
  end
  local state = call('HMGET', k, 'alerted', 'alert_wall', 'limit')
  local limit = (i == 1 and (limits[1] or defaults[1])) or (i == 2 and (limits[2] or defaults[2])) or state[3]
  limit = limit and limit + 0 or 0
  local alerted, upcoming = (state[1] or 0) + 0, NEVER
  if limit > 0 then
    for _, t in ipairs(thresholds) do
      if t > alerted then
        if spent_now * 100 < t * limit then
          upcoming = math.ceil(t * limit / 100)
          break
        end
        alerted = t
        if not (t == 100 and state[2]) then
          now = now or call('TIME')[1]
          call('XADD', string.sub(KEYS[1], 1, -7) .. 'alerts', 'MAXLEN', '~', defaults[3], '*', 'client', string.match(KEYS[1], '{(.*)}'),
            'period', ({'daily', 'monthly', 'run'})[i], 'window', string.match(k, '}:%a+:(.*)$'), 'threshold', t,
            'limit', string.format('%d', limit), 'spent', string.format('%d', spent_now), 'cause', 'spent', 'at', now)
          fired = fired + 1
        end
      end
    end
  end
  if alerted >= 100 and not state[2] then
    -- Spend reached the wall: a refusal after this must not fire the 100 % alert again.
    call('HSET', k, 'alerted', alerted, 'alert_next', string.format('%d', upcoming), 'alert_wall', '1')
  else
    call('HSET', k, 'alerted', alerted, 'alert_next', string.format('%d', upcoming))
  end
end

-- One period: the day (i = 1), the month (2) or the workflow run (3). A lease let through over
-- the limit (on_limit: warn) also counts its spend in over_limit_spent.
local function charge(k, i)
  if release then call('HINCRBY', k, 'reserved', release) end
  local spent_now = call('HINCRBY', k, 'spent', spent)
  call('HINCRBY', k, 'requests', '1')
  if flags == 'w' and i < 3 then call('HINCRBY', k, 'over_limit_spent', spent) end
  if i == 1 and ARGV[3] ~= '' then call('HINCRBY', k, 'model:' .. ARGV[3], actual) end
  local next_at = call('HGET', k, 'alert_next')
  if not next_at or spent_now >= next_at + 0 then check_alerts(k, i, spent_now) end
end

-- A period whose key already expired is over; its counters are not recreated.
local all = rk == '' and call('EXISTS', dk, mk) == 2 or rk ~= '' and call('EXISTS', dk, mk, rk) == 3
if all or call('EXISTS', dk) == 1 then charge(dk, 1) end
if all or call('EXISTS', mk) == 1 then charge(mk, 2) end
if rk ~= '' and (all or call('EXISTS', rk) == 1) then charge(rk, 3) end
return {status, status == 1 and cost + 0 or 0, actual + 0, fired}
