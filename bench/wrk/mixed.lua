-- wrk script for the soak: each connection cycles through the four request kinds of
-- bench/fixtures (chat, chat SSE, Anthropic messages, messages SSE).
--   BENCH_FIXTURES  directory of the fixtures (required)
--   BENCH_CLIENT, BENCH_RUN as in chat.lua.
local dir = assert(os.getenv("BENCH_FIXTURES"), "BENCH_FIXTURES is required")
local function read(name)
  local f = assert(io.open(dir .. "/" .. name, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local requests = {}
local counter = 0

function init(args)
  local common = { ["Content-Type"] = "application/json" }
  if os.getenv("BENCH_CLIENT") then common["X-Client-ID"] = os.getenv("BENCH_CLIENT") end
  if os.getenv("BENCH_RUN") then common["X-Bench-Run"] = os.getenv("BENCH_RUN") end
  local function headers(extra)
    local h = {}
    for k, v in pairs(common) do h[k] = v end
    for k, v in pairs(extra) do h[k] = v end
    return h
  end
  local openai = { Authorization = "Bearer sk-bench-not-a-real-key" }
  local anthropic = { ["x-api-key"] = "sk-ant-bench-not-a-real-key", ["anthropic-version"] = "2023-06-01" }
  local function with_stream(h) local c = {} for k, v in pairs(h) do c[k] = v end c["X-Bench-Stream"] = "1" return c end
  requests = {
    wrk.format("POST", "/v1/chat/completions", headers(openai), read("chat-request.json")),
    wrk.format("POST", "/v1/chat/completions", headers(with_stream(openai)), read("chat-request-stream.json")),
    wrk.format("POST", "/v1/messages", headers(anthropic), read("messages-request.json")),
    wrk.format("POST", "/v1/messages", headers(with_stream(anthropic)), read("messages-request-stream.json")),
  }
end

function request()
  counter = counter + 1
  return requests[(counter % #requests) + 1]
end

done = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "result.lua")
