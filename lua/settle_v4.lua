-- settle_v4 — turn a reservation into real spend, and fire the budget alerts it crosses.
-- Caller: TollgateRedis/BudgetStore.swift (`settle`); key layout, the lease member and why names
-- carry a version: reserve_v4.lua.
--
-- KEYS:
--   KEYS[1]  tollgate:{C}:leases
--   KEYS[2]  tollgate:{C}:limits   read only when an alert may be due
--   KEYS[3]  tollgate:{C}:alerts   the client's alert outbox (stream)
-- ARGV:
--   ARGV[1]  lease member "A|<reservation id>|<cost>|<day key>|<month key>|<run key>|<flags>"
--            as reserve_v3/v4 returned it (or the five-field one of reserve_v2)
--   ARGV[2]  actual cost, nano-USD (decimal integer >= 0)
--   ARGV[3]  the model billed ('' = unknown): its spend is also counted in the day's model:<name>
--   ARGV[4]  default alert thresholds, percent, ascending, comma-separated ('' = none)
--   ARGV[5]  default daily limit, ARGV[6] default monthly limit, nano-USD
--   ARGV[7]  outbox length bound (XADD MAXLEN ~)
-- Returns:
--   {status, reservedCost, charged, alertsFired}: status 1 settled (reservedCost released),
--   2 settled after reap (reservedCost 0), 0 unknown lease (already settled, never reserved, or
--   reaped longer ago than the retention: nothing charged, nothing fired). charged is the actual
--   cost now on the books for this request (the replica adds it to the top-spender sets).
--
-- Exactly once per lease: removing the lease's member from the leases zset is what authorises
-- the charge, in the same atomic step. A retried settle (reply lost on a broken connection)
-- finds no member and charges nothing; so does a forged or garbled one. Nothing else from the
-- caller is trusted: the amounts and the keys charged are the ones reserve wrote into the
-- member it removed. Every charge goes to the day and month the reservation was made in.
--
-- Which member it removes says what is already on the books:
--   A|…  live lease: release its reservation, charge the actual cost.
--   C|…  reaped by reserve_v3/v4, which already charged its cost: correct spent by
--        actual - cost (usually a decrease).
--   R|…  reaped by an old reserve_v2, which only released it: charge the actual cost.
--
-- v4 changed from v3: threshold alerts and per-model spend.
--   * Alerts, exactly once per period window. Each period hash (day, month, run) keeps
--     `alerted` (the highest threshold fired) and `alert_next` (the spend at which the next one
--     fires). The common case costs one HGET per period; only a settle that reaches
--     `alert_next` (or finds none: the first settle of a period) reads the limits, fires every
--     threshold it crossed into the outbox with XADD, and moves `alert_next` on. Atomic, so
--     however many replicas race over 80 %, one of them fires it, once. A crossing settled by
--     an old settle_v3 is fired by the next settle_v4 (it compares absolute spend). The 100 %
--     alert may already have fired from reserve_v4 (`alert_wall`, a refusal at the limit): then
--     spend reaching 100 % does not fire it again.
--   * `model:<name>` in the day hash: spend per model, for analytics at no extra round trip.
-- An old replica's settle_v3 keeps working beside it: it charges the same way and fires nothing.
--
-- The counters move with HINCRBY, not HMGET + one HSET computed here: reading three numbers
-- into Lua and formatting them back costs more Redis CPU than the two writes it saves
-- (measured in docs/redis.md).

-- Checked before anything changes: HINCRBY refusing it after the ZREM would lose the charge.
if not string.find(ARGV[2], '^%d+$') or #ARGV[2] > 16 then
  return redis.error_reply('ERR settle_v4: the actual cost must be a decimal integer >= 0')
end
-- A lease member's fields (reserve_v3.lua); v2 wrote the first five only.
local cost, dk, mk, rk, flags = string.match(ARGV[1], '^A|[^|]+|(%d+)|([^|]+)|([^|]+)|([^|]*)|(%a*)$')
if not cost then
  cost, dk, mk = string.match(ARGV[1], '^A|[^|]+|(%d+)|([^|]+)|([^|]+)$')
  rk, flags = '', ''
end
if not cost then return {0, 0, 0, 0} end
local rest = string.sub(ARGV[1], 2)

-- What to add to spent, and whether to release the reservation. Numbers go through '%d':
-- v2's '-' .. cost wrote "-0" for a free lease, which HINCRBY rejects after the ZREM.
local status, spent, release
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  status, spent, release = 1, ARGV[2], string.format('%d', -cost)
elseif redis.call('ZREM', KEYS[1], 'C' .. rest) == 1 then
  -- Both below 2^53, so the difference is exact.
  status, spent = 2, string.format('%d', ARGV[2] - cost)
elseif redis.call('ZREM', KEYS[1], 'R' .. rest) == 1 then
  status, spent = 2, ARGV[2]
else
  return {0, 0, 0, 0}
end

-- Alerts: nothing below runs unless a period's spend reached its `alert_next`.
local NEVER = 9007199254740992 -- 2^53: no threshold left in this window
local limits, thresholds, now
local fired = 0
local function due_thresholds()
  if not limits then
    limits = redis.call('HMGET', KEYS[2], 'daily', 'monthly', 'alerts')
    thresholds = {}
    for t in string.gmatch(limits[3] or ARGV[4], '%d+') do thresholds[#thresholds + 1] = t + 0 end
    table.sort(thresholds)
  end
  return thresholds
end
local period_names = {'daily', 'monthly', 'run'}
local function check_alerts(k, i, spent_now)
  local next_at = redis.call('HGET', k, 'alert_next')
  if next_at and spent_now < next_at + 0 then return end
  local list = due_thresholds()
  local state = redis.call('HMGET', k, 'alerted', 'alert_wall', 'limit')
  local limit = (i == 1 and (limits[1] or ARGV[5])) or (i == 2 and (limits[2] or ARGV[6])) or state[3]
  limit = limit and limit + 0 or 0
  local alerted, upcoming = (state[1] or 0) + 0, NEVER
  if limit > 0 then
    for _, t in ipairs(list) do
      if t > alerted then
        if spent_now * 100 < t * limit then
          upcoming = math.ceil(t * limit / 100)
          break
        end
        alerted = t
        if not (t == 100 and state[2]) then
          now = now or redis.call('TIME')[1]
          local window = string.match(k, '}:%a+:(.*)$')
          redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'client', string.match(KEYS[1], '{(.*)}'),
            'period', period_names[i], 'window', window, 'threshold', t, 'limit', string.format('%d', limit),
            'spent', string.format('%d', spent_now), 'cause', 'spent', 'at', now)
          fired = fired + 1
        end
      end
    end
  end
  if alerted >= 100 and not state[2] then
    -- Spend reached the wall: a refusal after this must not fire the 100 % alert again.
    redis.call('HSET', k, 'alerted', alerted, 'alert_next', string.format('%d', upcoming), 'alert_wall', '1')
  else
    redis.call('HSET', k, 'alerted', alerted, 'alert_next', string.format('%d', upcoming))
  end
end

-- The day, the month and the workflow run, if any; a lease let through over the limit
-- (on_limit: warn) also counts its spend in over_limit_spent.
for i, k in ipairs({dk, mk, rk}) do
  -- A period whose key already expired is over; its counters are not recreated.
  if k ~= '' and redis.call('EXISTS', k) == 1 then
    if release then redis.call('HINCRBY', k, 'reserved', release) end
    local spent_now = redis.call('HINCRBY', k, 'spent', spent)
    redis.call('HINCRBY', k, 'requests', '1')
    if flags == 'w' and i < 3 then redis.call('HINCRBY', k, 'over_limit_spent', spent) end
    if i == 1 and ARGV[3] ~= '' then redis.call('HINCRBY', k, 'model:' .. ARGV[3], ARGV[2]) end
    check_alerts(k, i, spent_now)
  end
end
return {status, status == 1 and cost + 0 or 0, ARGV[2] + 0, fired}
