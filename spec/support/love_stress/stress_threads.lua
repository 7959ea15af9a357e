-- AIGC_STRESS=threads (main.lua hands over to this file): aigc in LÖVE's
-- main thread and in love.thread workers at once (spec/love_stress_spec.lua,
-- under xvfb-run against the bundled server pausing between tokens): the
-- main thread and two workers each require aigc and stream; one worker ends
-- (its code returns, LÖVE closes its lua_State) while its stream is in
-- flight; then a third worker requires aigc in a fresh state and streams
-- beside the main thread's next stream. Writes what it saw as JSON to
-- $AIGC_STRESS_OUT and quits. Frames are counted, never timed.
-- luacheck: globals love
local OUT = assert(os.getenv("AIGC_STRESS_OUT"), "AIGC_STRESS_OUT")
local BASE = assert(os.getenv("OPENAI_BASE_URL"), "OPENAI_BASE_URL")
local aigc = require "aigc"

local r = { frames = 0, main = {}, workers = {} }
-- (every reply this long: at 25 ms a token the streams overlap for ~300 ms)
local TAIL = ", one two three four five six seven eight nine ten"
local client, workers, late_started = nil, {}, false

-- A worker: its own state, its own aigc and client, one streamed chat. With
-- `leave`, the thread's code returns once deltas have come, the stream in flight.
local WORKER = [[
  local path, cpath, base, name, leave, tail = ...
  package.path, package.cpath = path, cpath
  require "love.thread"
  local out = love.thread.getChannel("aigc_threads")
  local ok, err = pcall(function ()
    local aigc = require "aigc"
    local c = aigc.client { base_url = base, model = "aigc-dev", max_retries = 0 }
    local deltas, text, failure = 0, nil, nil
    local req = c:chat_async { messages = { { role = "user", content = "Repeat after me: from " .. name .. tail } },
      stream = function (d) if d then deltas = deltas + 1 end end,
      on_done = function (res) text = res.text end,
      on_error = function (e) failure = e.kind .. ": " .. e.message end }
    if leave then
      while deltas == 0 and not text and not failure do c:step(0.01) end
      out:push(aigc.json.encode { name = name, left = true, deltas = deltas, status = req:status(), err = failure })
      return   -- (LÖVE closes this state: the request is collected mid-stream)
    end
    while c:step(0.05) > 0 do end
    c:close()
    out:push(aigc.json.encode { name = name, text = text, deltas = deltas, err = failure })
  end)
  if not ok then
    local json = package.loaded.aigc and package.loaded.aigc.json
    out:push(json and json.encode { name = "raised", message = tostring(err) } or '{"name":"raised"}')
  end
]]

local function stream_main (field, text)
  r.main[field .. "_deltas"] = 0
  client:chat_async { messages = { { role = "user", content = "Repeat after me: " .. text .. TAIL } },
    stream = function (d) if d then r.main[field .. "_deltas"] = r.main[field .. "_deltas"] + 1 end end,
    on_done = function (res) r.main[field] = res.text end,
    on_error = function (e) r.main[field .. "_err"] = e.kind .. ": " .. e.message end }
end

local function start_worker (name, leave)
  local t = love.thread.newThread(WORKER)
  workers[#workers + 1] = { name = name, thread = t }
  t:start(package.path, package.cpath, BASE, name, leave, TAIL)
end

local function finish ()
  local f = assert(io.open(OUT, "w"))
  f:write(aigc.json.encode(r))
  f:close()
  love.event.quit(0)
end

function love.load ()
  client = aigc.client { base_url = BASE, model = "aigc-dev", max_retries = 0 }
  stream_main("text", "from main")
  start_worker("a", false)
  start_worker("leaver", true)
end

function love.update ()
  r.frames = r.frames + 1
  client:step(0)
  local channel = love.thread.getChannel("aigc_threads")
  local got = channel:pop()
  while got do
    local w = aigc.json.decode(got)
    r.workers[w.name or "?"] = w
    got = channel:pop()
  end
  for _, w in ipairs(workers) do
    local err = w.thread:getError()
    if err then r.workers[w.name .. "_error"] = err end
  end
  -- The leaver has gone (its state closed with its stream in flight): a fresh
  -- state on a new thread requires aigc and streams while the others run.
  if not late_started and r.workers.leaver and not workers[2].thread:isRunning() then
    late_started = true
    stream_main("again", "from main again")
    start_worker("late", false)
  end
  local running = false
  for _, w in ipairs(workers) do running = running or w.thread:isRunning() end
  if late_started and not running and client:active() == 0 and r.workers.late then finish() end
  if r.frames > 5000 then r.error = "timed out"; finish() end
end

function love.draw ()
  love.graphics.print(("frame %d  main deltas %d"):format(r.frames, r.main.text_deltas or 0), 10, 10)
end
