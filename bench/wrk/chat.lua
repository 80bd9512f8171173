-- wrk script: POST one fixed body with the headers a client SDK sends.
--   BENCH_BODY    file with the request body (required)
--   BENCH_CLIENT  X-Client-ID (Tollgate's budget key; direct and nginx runs ignore it)
--   BENCH_RUN     X-Bench-Run, logged by the fixed upstream to reconcile the budget per run
--   BENCH_STREAM  "1": ask the upstream for its SSE variant (X-Bench-Stream)
--   BENCH_FAMILY  "anthropic": x-api-key + anthropic-version instead of Authorization
-- done() prints one machine-readable line: WRK_RESULT {json}, latencies in µs (p99.9 included,
-- which `--latency` does not print).
local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

local f = assert(io.open(assert(env("BENCH_BODY"), "BENCH_BODY is required"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
if env("BENCH_FAMILY", "openai") == "anthropic" then
  wrk.headers["x-api-key"] = "sk-ant-bench-not-a-real-key"
  wrk.headers["anthropic-version"] = "2023-06-01"
else
  wrk.headers["Authorization"] = "Bearer sk-bench-not-a-real-key"
end
if env("BENCH_CLIENT") then wrk.headers["X-Client-ID"] = env("BENCH_CLIENT") end
if env("BENCH_RUN") then wrk.headers["X-Bench-Run"] = env("BENCH_RUN") end
if env("BENCH_STREAM") == "1" then wrk.headers["X-Bench-Stream"] = "1" end

done = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "result.lua")
