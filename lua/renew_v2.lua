-- renew_v2 — extend a live lease so a long stream is not reaped while it runs.
-- Caller: TollgateRedis/BudgetStore.swift (`renew`); key layout and the lease member: reserve_v2.lua.
--
-- KEYS:
--   KEYS[1]  tollgate:{C}:leases
-- ARGV:
--   ARGV[1]  lease member "A|…" as reserve_v2 returned it
--   ARGV[2]  lease, ms
--   ARGV[3]  clock offset seconds (0 in production)
-- Returns:
--   1 when renewed, 0 when the lease is not active (settled or reaped)

-- Only an active member: renewing an R|… member would stretch a reaped lease's retention.
if string.sub(ARGV[1], 1, 2) ~= 'A|' then return 0 end
local t = redis.call('TIME')
local now_ms = (tonumber(t[1]) + tonumber(ARGV[3])) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = string.format('%d', now_ms + tonumber(ARGV[2]))
if redis.call('ZADD', KEYS[1], 'XX', 'CH', deadline, ARGV[1]) == 1 then return 1 end
-- CH counts only a moved deadline; a lease renewed twice within one millisecond is still live.
return redis.call('ZSCORE', KEYS[1], ARGV[1]) and 1 or 0
