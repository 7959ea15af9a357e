-- CPU per Responses API stream event delivered to a callback, next to
-- chat's CPU per chunk (issue 14 item 7). Not a test: a figure, printed as a
-- ratio taken side by side in one run.
--
--   lua5.4 bench/responses_bench.lua [ROUNDS [STREAMS]]      (default 5 rounds of 40 streams)
--   BENCH_CPATH='build/jit/?.so' luajit bench/responses_bench.lua   the same under LuaJIT
--
-- The server is the bundled one (lua/aigc/devserver.lua, a separate
-- process, no pauses): both APIs stream the same ~150-token story, one
-- event (Responses) or chunk (chat) per token plus their framing events.
-- What is measured is this process's CPU (os.clock: user + sys) over the
-- streams, divided by the events or chunks the callback received; the
-- callback takes both arguments (text delta and the decoded event/chunk),
-- as a caller that looks at event types does. Each round runs both APIs,
-- alternating which goes first; the figures are the medians over rounds.
-- The Responses events are accumulated in C (src/raccum.c) as chat chunks
-- are (src/accum.c).

local root = os.getenv("BENCH_ROOT") or "."
local cpath = os.getenv("BENCH_CPATH") or "./?.so"
if cpath:sub(1, 1) ~= "/" then cpath = root .. "/" .. cpath:gsub("^%./", "") end
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/spec/support/?.lua;" .. package.path
package.cpath = cpath .. ";" .. package.cpath

local aigc = require "aigc"
local devserver = require "devserver"

local ROUNDS, STREAMS = tonumber(arg[1]) or 5, tonumber(arg[2]) or 40
local STORY = "Generate a short story about a robot that learns to paint."
local clock = os.clock

local srv = devserver.start { pause_ms = 0 }
local client = aigc.client { base_url = srv.base_url, model = "aigc-dev", max_retries = 0 }

-- Runs `STREAMS` streams of one API; returns (CPU seconds, events, text bytes).
local function run (api)
  local events, bytes = 0, 0
  local function on_event (delta, event)
    events = events + 1
    if delta then bytes = bytes + #delta end
    assert(event)
  end
  local c0 = clock()
  for _ = 1, STREAMS do
    local res, err
    if api == "chat" then
      res, err = client:chat { messages = { { role = "user", content = STORY } }, stream = on_event }
    else
      res, err = client:respond { input = STORY, stream = on_event }
    end
    if not res then error(api .. ": " .. tostring(err)) end
  end
  return clock() - c0, events, bytes
end

local function median (t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) / 2] or (t[n / 2] + t[n / 2 + 1]) / 2
end

run("chat"); run("responses")   -- warm-up: connections open, code paths hot
local per = { chat = {}, responses = {} }
local counts = {}
for round = 1, ROUNDS do
  local order = round % 2 == 1 and { "chat", "responses" } or { "responses", "chat" }
  for _, api in ipairs(order) do
    local cpu, events = run(api)
    per[api][round] = cpu / events * 1e6
    counts[api] = events / STREAMS
  end
end
client:close()
srv:stop()

local chat, resp = median(per.chat), median(per.responses)
local jit = rawget(_G, "jit")
print(("aigc %s, %s: %d rounds of %d streams"):format(aigc._VERSION, jit and jit.version or _VERSION, ROUNDS, STREAMS))
print(("  chat completions: %6.2f us CPU per chunk  (%d chunks a stream)"):format(chat, counts.chat))
print(("  Responses API:    %6.2f us CPU per event  (%d events a stream)"):format(resp, counts.responses))
print(("  Responses / chat: %6.2f"):format(resp / chat))
