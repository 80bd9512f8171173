-- settle_v3 — turn a reservation into real spend. Caller: TollgateRedis/BudgetStore.swift
-- (`settle`); key layout, the lease member and why names carry a version: reserve_v3.lua.
--
-- KEYS:
--   KEYS[1]  tollgate:{C}:leases
-- ARGV:
--   ARGV[1]  lease member "A|<reservation id>|<cost>|<day key>|<month key>|<run key>|<flags>"
--            as reserve_v3 returned it (or the five-field one of reserve_v2)
--   ARGV[2]  actual cost, nano-USD (decimal integer >= 0)
-- Returns:
--   {status, reservedCost}: status 1 settled (reservedCost released), 2 settled after reap
--   (reservedCost 0), 0 unknown lease (already settled, never reserved, or reaped longer ago
--   than the retention: nothing charged)
--
-- Exactly once per lease: removing the lease's member from the leases zset is what authorises
-- the charge, in the same atomic step. A retried settle (reply lost on a broken connection)
-- finds no member and charges nothing; so does a forged or garbled one. Nothing else from the
-- caller is trusted: the amounts and the keys charged are the ones reserve wrote into the
-- member it removed. Every charge goes to the day and month the reservation was made in.
--
-- Which member it removes says what is already on the books:
--   A|…  live lease: release its reservation, charge the actual cost.
--   C|…  reaped by reserve_v3, which already charged its cost: correct spent by
--        actual - cost (usually a decrease).
--   R|…  reaped by an old reserve_v2, which only released it: charge the actual cost.
-- v3 changed from v2: the C|… marker (reaped means charged). An old replica's settle_v2 looks
-- only for A| and R|, so it can never charge a C|… lease twice; it charges nothing instead.
--
-- The counters move with HINCRBY, not HMGET + one HSET computed here: reading three numbers
-- into Lua and formatting them back costs more Redis CPU than the two writes it saves
-- (measured in docs/redis.md).

-- Checked before anything changes: HINCRBY refusing it after the ZREM would lose the charge.
if not string.find(ARGV[2], '^%d+$') or #ARGV[2] > 16 then
  return redis.error_reply('ERR settle_v3: the actual cost must be a decimal integer >= 0')
end
-- A lease member's fields (reserve_v3.lua); v2 wrote the first five only.
local cost, dk, mk, rk, flags = string.match(ARGV[1], '^A|[^|]+|(%d+)|([^|]+)|([^|]+)|([^|]*)|(%a*)$')
if not cost then
  cost, dk, mk = string.match(ARGV[1], '^A|[^|]+|(%d+)|([^|]+)|([^|]+)$')
  rk, flags = '', ''
end
if not cost then return {0, 0} end
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
  return {0, 0}
end

-- The day, the month and the workflow run, if any; a lease let through over the limit
-- (on_limit: warn) also counts its spend in over_limit_spent.
for i, k in ipairs({dk, mk, rk}) do
  -- A period whose key already expired is over; its counters are not recreated.
  if k ~= '' and redis.call('EXISTS', k) == 1 then
    if release then redis.call('HINCRBY', k, 'reserved', release) end
    redis.call('HINCRBY', k, 'spent', spent)
    redis.call('HINCRBY', k, 'requests', '1')
    if flags == 'w' and i < 3 then redis.call('HINCRBY', k, 'over_limit_spent', spent) end
  end
end
if status == 1 then return {1, cost + 0} end
return {2, 0}
