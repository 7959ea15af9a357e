-- LÖVE's restart (love.event.quit("restart"), a developer's reload key):
-- LÖVE closes the Lua state and opens a new one in the same process, which
-- requires aigc (and its C module) again. Runs 1 to 3 restart with 20
-- streams in flight; run 4 lets its 20 finish. Each run appends a line to
-- $AIGC_PROBE_OUT (which also tells a run its number: LÖVE keeps no Lua
-- value across the restart here).
-- luacheck: globals love
local OUT = assert(os.getenv("AIGC_PROBE_OUT"), "AIGC_PROBE_OUT")
local BASE = assert(os.getenv("OPENAI_BASE_URL"), "OPENAI_BASE_URL")
local RUNS = 4

local aigc = require "aigc"
local client, run
local frames, deltas, done, failed = 0, 0, 0, 0

local function note (line)
  local f = assert(io.open(OUT, "a"))
  f:write(line, "\n")
  f:close()
end

function love.load ()
  run = 1
  local f = io.open(OUT)
  if f then for _ in f:lines() do run = run + 1 end f:close() end
  client = aigc.client { base_url = BASE, model = "aigc-dev", max_retries = 0, max_starts_per_step = 8 }
  for _ = 1, 20 do
    client:chat_async { max_tokens = 30,
      messages = { { role = "user", content = "Tell me your story about a robot." } },
      stream = function (d) if d and d ~= "" then deltas = deltas + 1 end end,
      on_done = function (res) if res.text:match("^Once upon a time") then done = done + 1 end end,
      on_error = function () failed = failed + 1 end }
  end
end

function love.update ()
  frames = frames + 1
  client:step(0)
  if run < RUNS and deltas > 0 then
    note(("run %d restarted with %d active"):format(run, client:active()))
    love.event.quit("restart")
    run = math.huge        -- (the restart comes after this frame)
  elseif run == RUNS and done + failed == 20 then
    note(("run %d: %d done, %d failed"):format(run, done, failed))
    love.event.quit(0)
    run = math.huge
  elseif frames > 5000 and run ~= math.huge then
    note(("run %d: timed out, %d done, %d failed"):format(run, done, failed))
    love.event.quit(1)
    run = math.huge
  end
end
