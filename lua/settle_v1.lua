-- settle_v1 — turn a reservation into real spend. Caller: TollgateRedis/BudgetStore.swift
-- (`settle`); key layout and why names carry a version: reserve_v1.lua.
--
-- Idempotent per reservation id: the lease record is deleted in the same atomic step that
-- charges it, so a retried settle (reply lost on a broken connection) finds nothing and charges
-- nothing. A settle after the lease was reaped (reserved already released by reserve_v1) still
-- charges the spend once, to the day and month the reservation was made in.
--
-- KEYS:
--   KEYS[1]  tollgate:{C}:leases
--   KEYS[2]  tollgate:{C}:lease_data
-- ARGV:
--   ARGV[1]  reservation id
--   ARGV[2]  actual cost, nano-USD (>= 0)
-- Returns:
--   {status, reservedCost}: status 1 settled, 2 settled after reap, 0 unknown id (already
--   settled or never reserved: nothing charged)

local v = redis.call('HGET', KEYS[2], ARGV[1])
if not v then return {0, 0} end
local state, cost, dk, mk = string.match(v, '^(%a)|(%d+)|([^|]+)|([^|]+)$')
local actual = ARGV[2]

for _, k in ipairs({dk, mk}) do
  -- A period whose key already expired is over; its counters are not recreated.
  if redis.call('EXISTS', k) == 1 then
    if state == 'A' then redis.call('HINCRBY', k, 'reserved', '-' .. cost) end
    redis.call('HINCRBY', k, 'spent', actual)
    redis.call('HINCRBY', k, 'requests', 1)
  end
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
if state == 'A' then return {1, tonumber(cost)} end
return {2, 0}
