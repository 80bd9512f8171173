-- renew_v1 — extend a live lease so a long stream is not reaped while it runs.
-- Caller: TollgateRedis/BudgetStore.swift (`renew`); key layout: reserve_v1.lua.
--
-- KEYS:
--   KEYS[1]  tollgate:{C}:leases
--   KEYS[2]  tollgate:{C}:lease_data
-- ARGV:
--   ARGV[1]  reservation id
--   ARGV[2]  lease, ms
--   ARGV[3]  clock offset seconds (0 in production)
-- Returns:
--   1 when renewed, 0 when the lease is not active (settled or reaped)

local v = redis.call('HGET', KEYS[2], ARGV[1])
if not v or string.sub(v, 1, 1) ~= 'A' then return 0 end
local t = redis.call('TIME')
local now_ms = (tonumber(t[1]) + tonumber(ARGV[3])) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', string.format('%d', now_ms + tonumber(ARGV[2])), ARGV[1])
return 1
