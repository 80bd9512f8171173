-- settle_v2 — turn a reservation into real spend. Caller: TollgateRedis/BudgetStore.swift
-- (`settle`); key layout, the lease member and why names carry a version: reserve_v2.lua.
--
-- KEYS:
--   KEYS[1]  tollgate:{C}:leases
-- ARGV:
--   ARGV[1]  lease member "A|<reservation id>|<cost>|<day key>|<month key>" as reserve_v2 returned it
--   ARGV[2]  actual cost, nano-USD (decimal integer >= 0)
-- Returns:
--   {status, reservedCost}: status 1 settled, 2 settled after reap, 0 unknown lease (already
--   settled, never reserved, or reaped longer ago than the retention: nothing charged)
--
-- Exactly once per lease: removing the lease's member from the leases zset is what authorises
-- the charge, in the same atomic step. A retried settle (reply lost on a broken connection)
-- finds no member and charges nothing; so does a forged or garbled one. Nothing else from the
-- caller is trusted: the amount released and the keys charged are the ones reserve_v2 wrote
-- into the member it removed. A settle after the lease was reaped (its R|… member: reserved
-- already released) still charges the spend once, to the day and month the reservation was
-- made in.
--
-- The counters move with HINCRBY, not HMGET + one HSET computed here: reading three numbers
-- into Lua and formatting them back costs more Redis CPU than the two writes it saves
-- (measured in docs/redis.md).

-- Checked before anything changes: HINCRBY refusing it after the ZREM would lose the charge.
if not string.find(ARGV[2], '^%d+$') or #ARGV[2] > 16 then
  return redis.error_reply('ERR settle_v2: the actual cost must be a decimal integer >= 0')
end
local cost, dk, mk = string.match(ARGV[1], '^A|[^|]+|(%d+)|([^|]+)|([^|]+)$')
if not cost then return {0, 0} end

local status
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  status = 1
elseif redis.call('ZREM', KEYS[1], 'R' .. string.sub(ARGV[1], 2)) == 1 then
  status = 2
else
  return {0, 0}
end

for _, k in ipairs({dk, mk}) do
  -- A period whose key already expired is over; its counters are not recreated.
  if redis.call('EXISTS', k) == 1 then
    if status == 1 then redis.call('HINCRBY', k, 'reserved', '-' .. cost) end
    redis.call('HINCRBY', k, 'spent', ARGV[2])
    redis.call('HINCRBY', k, 'requests', '1')
  end
end
if status == 1 then return {1, cost + 0} end
return {2, 0}
