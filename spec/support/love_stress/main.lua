-- A LÖVE 11 game that uses aigc as a game under stress would (run by
-- spec/love_stress_spec.lua under xvfb-run): a crowd of NPCs streaming at
-- once while the frame loop runs, NPCs dropped mid-reply (a userdata's
-- __gc cancels the request), callbacks that raise, a request to a server
-- that never answers, a love.thread worker with its own aigc, a hot reload
-- (package.loaded cleared, aigc required again, the old client dropped with
-- requests in flight), and love.event.quit mid-stream. It writes what it saw
-- as JSON to $AIGC_STRESS_OUT (from love.quit) and counts frames: the spec
-- checks counts, never times.
--
-- AIGC_STRESS=crowd | quit | quitclose | threads (stress_threads.lua: aigc
-- in the main thread and love.thread workers at once); OPENAI_BASE_URL the
-- bundled server.
-- luacheck: globals love newproxy
local MODE = os.getenv("AIGC_STRESS") or "crowd"
if MODE == "threads" then
  require "stress_threads"
  return
end
local OUT = assert(os.getenv("AIGC_STRESS_OUT"), "AIGC_STRESS_OUT")
local BASE = assert(os.getenv("OPENAI_BASE_URL"), "OPENAI_BASE_URL")
local CROWD = 40

local aigc = require "aigc"
local r = {                    -- the report
  mode = MODE, frames = 0, max_started_in_a_step = 0, started = CROWD,
  deltas = 0, done = 0, failed = {}, callback_errors = {}, delivered_after_cancel = 0,
  dropped = 0, gc_canceled = 0, raised = 0, reload = {}, thread = {}, stalled = {},
}
local log = {}                 -- per NPC id: what its callbacks saw (not the NPC: it is dropped)
local npcs = {}
local client, stalled_req, thread, reloaded_client, reload_reqs
local quitting_at

local function count_errors (errs)
  for _, e in ipairs(errs or {}) do
    r.callback_errors[#r.callback_errors + 1] = tostring(type(e) == "table" and e.message or e)
  end
end

-- An NPC: a userdata proxy whose __gc cancels its request (LuaJIT's tables
-- have no finalizers: README, the Lua versions' table).
local function spawn (c, id, params)
  local entry = { deltas = 0 }
  log[id] = entry
  params.stream = function (delta)
    if entry.canceled then r.delivered_after_cancel = r.delivered_after_cancel + 1 end
    if delta then entry.deltas = entry.deltas + 1; r.deltas = r.deltas + 1 end
    -- An NPC dropped from inside its own stream callback, a full collection
    -- there: its finalizer cancels the request being delivered.
    if entry.drop_in_callback and entry.deltas == 3 then
      for i, npc in ipairs(npcs) do
        if npc.id == id then table.remove(npcs, i); r.dropped_in_callback = (r.dropped_in_callback or 0) + 1 end
      end
      collectgarbage("collect")
    end
  end
  params.on_done = function (res)
    if entry.canceled then r.delivered_after_cancel = r.delivered_after_cancel + 1 end
    entry.text = res.text
    r.done = r.done + 1
    if entry.raise then r.raised = r.raised + 1; error("NPC " .. id .. " on_done raised") end
  end
  params.on_error = function (err)
    entry.err = err.kind
    if err.kind ~= "canceled" then r.failed[#r.failed + 1] = id .. ": " .. tostring(err) end
    if entry.raise then r.raised = r.raised + 1; error("NPC " .. id .. " on_error raised") end
  end
  local npc = { id = id, req = c:chat_async(params) }
  local proxy = newproxy(true)
  getmetatable(proxy).__gc = function ()
    if npc.req:status() == "queued" or npc.req:status() == "running" then
      entry.canceled = true
      r.gc_canceled = r.gc_canceled + 1
    end
    npc.req:cancel()
  end
  npc.proxy = proxy
  return npc, entry
end

local THREAD_CODE = [[
  local path, cpath, base, model = ...
  package.path = path
  package.cpath = cpath
  require "love.thread"
  local out = love.thread.getChannel("aigc_stress")
  local ok, err = pcall(function ()
    local aigc = require "aigc"
    local c = aigc.client { base_url = base, model = model, max_retries = 0 }
    local res, e = c:chat { messages = { { role = "user", content = "Repeat after me: from the thread" } } }
    out:push(res and res.text or ("error: " .. tostring(e)))
    c:close()
  end)
  if not ok then out:push("raised: " .. tostring(err)) end
]]

function love.load ()
  love.errorhandler = function (msg)
    r.error = debug.traceback(tostring(msg), 2)
    local f = io.open(OUT, "w")
    if f then f:write(aigc.json.encode(r)); f:close() end
    io.stderr:write("stress: ", r.error, "\n")
    os.exit(1)
  end
  -- A collector that runs often: finalizers (the NPCs' cancels) run inside
  -- aigc's own allocations, in steps and callbacks.
  collectgarbage("setpause", 20)
  collectgarbage("setstepmul", 400)
  client = aigc.client { base_url = BASE, model = "aigc-dev", max_retries = 0, timeout = 120,
                         max_starts_per_step = 8, max_bytes_per_step = 65536 }
  for i = 1, CROWD do
    local id = "npc" .. i
    local model = (i % 10 == 3) and "fault:status=500" or "aigc-dev"
    local npc, entry = spawn(client, id, { model = model, max_tokens = 30,
      messages = { { role = "user", content = "Tell me your story about a robot that learns to paint." } } })
    entry.raise = i % 7 == 0 or i % 10 == 3     -- raising callbacks: never dropped below
    entry.keep = entry.raise or i % 2 == 1
    entry.drop_in_callback = not entry.keep and i % 4 == 0
    npcs[#npcs + 1] = npc
  end
  if MODE ~= "crowd" then
    -- At quit, also a task waiting in a blocking call (it yields) and a
    -- conversation streaming sentences: the state's closing collects them.
    client:spawn(function ()
      r.task_got = client:chat { model = "fault:hang", messages = { { role = "user", content = "Hi" } } }
    end)
    local conv = aigc.conversation { client = client, system = "You are Sam." }
    conv:say_async("Tell me your story about a robot that learns to paint.",
                   aigc.sentences.stream({}, function () r.sentences = (r.sentences or 0) + 1 end))
  end
  -- A server that stalls: this request never gets a byte.
  stalled_req = client:chat_async { model = "fault:hang", messages = { { role = "user", content = "Hi" } } }
  r.stalled.status_at_start = stalled_req:status()
  if love.thread then
    -- crowd: a blocking call in a thread; quit: one that never ends (the
    -- server hangs) while the game quits.
    thread = love.thread.newThread(THREAD_CODE)
    thread:start(package.path, package.cpath, BASE, MODE == "quit" and "fault:hang" or "aigc-dev")
  end
end

-- The hot reload: every aigc module forgotten and required again; the new
-- module's client takes over; the old one is dropped a while later with its
-- stalled request still in flight (its __gc closes it).
local function hot_reload ()
  for name in pairs(package.loaded) do
    if name == "aigc" or name:find("^aigc%.") then package.loaded[name] = nil end
  end
  local fresh = require "aigc"
  r.reload.new_module = fresh ~= aigc
  r.reload.same_null = fresh.null == aigc.null
  reloaded_client = fresh.client { base_url = BASE, model = "aigc-dev", max_retries = 0 }
  reload_reqs = {}
  for i = 1, 5 do
    reload_reqs[i] = reloaded_client:chat_async { messages = { { role = "user", content = "Echo: reload " .. i } } }
  end
  -- An old request handed to the new module's functions, and the reverse.
  r.reload.old_req_status = stalled_req:status()
  r.reload.json_roundtrip = fresh.json.encode(aigc.json.decode('{"a":[]}'))
end

local function finish ()
  if quitting_at then return end
  quitting_at = r.frames
  love.event.quit(0)
end

function love.update ()
  r.frames = r.frames + 1
  -- The NPCs' requests a step takes from the queue (max_starts_per_step = 8).
  local was_queued = {}
  for i, npc in ipairs(npcs) do was_queued[i] = npc.req:status() == "queued" end
  local _, errs = client:step(0)
  count_errors(errs)
  local started = 0
  for i, npc in ipairs(npcs) do
    if was_queued[i] and npc.req:status() ~= "queued" then started = started + 1 end
  end
  r.max_started_in_a_step = math.max(r.max_started_in_a_step, started)
  if stalled_req and stalled_req:status() == "running" then
    r.stalled.frames_while_running = (r.stalled.frames_while_running or 0) + 1
  end
  if MODE == "quit" or MODE == "quitclose" then
    -- Quit mid-stream: replies are streaming (the server pauses between tokens).
    if r.deltas > 0 and r.done < CROWD - 4 and not quitting_at then
      r.quit_with_active = client:active()
      finish()
    end
    return
  end
  -- Drop an NPC a frame (the reference goes; its proxy's __gc cancels).
  do
    for i, npc in ipairs(npcs) do
      if not log[npc.id].keep and not log[npc.id].drop_in_callback then
        table.remove(npcs, i)
        r.dropped = r.dropped + 1
        break
      end
    end
    collectgarbage("step", 64)
  end
  if r.frames == 30 then hot_reload() end
  if reloaded_client and reloaded_client ~= client then
    local _, errs2 = reloaded_client:step(0)
    count_errors(errs2)
  end
  local kept_ended = true
  for _, npc in ipairs(npcs) do
    local st = npc.req:status()
    if st == "queued" or st == "running" then kept_ended = false end
  end
  if r.frames >= 90 and kept_ended and stalled_req then
    -- The old module's client goes, its stalled request in flight, unclosed.
    r.stalled.status_before_drop = stalled_req:status()
    r.stalled.frames_before_drop = r.stalled.frames_while_running
    r.stalled.drop_frame = r.frames
    stalled_req, npcs = nil, {}
    client = reloaded_client
    collectgarbage("collect"); collectgarbage("collect")
  end
  if thread then
    local got = love.thread.getChannel("aigc_stress"):pop()
    if got then r.thread.text = got end
    local terr = thread:getError()
    if terr then r.thread.error = terr end
  end
  local pending = 0
  for _, q in ipairs(reload_reqs or {}) do
    if q:status() == "queued" or q:status() == "running" then pending = pending + 1 end
  end
  if not stalled_req and pending == 0 and (r.thread.text or r.thread.error or not thread) then
    r.reload.texts = {}
    for i, q in ipairs(reload_reqs) do
      local res, err = q:result()
      r.reload.texts[i] = res and res.text or tostring(err)
    end
    finish()
  end
  if r.frames > 3000 then r.error = "timed out"; finish() end
end

function love.draw ()
  love.graphics.print(("frame %d  deltas %d  done %d"):format(r.frames, r.deltas, r.done), 10, 10)
end

function love.quit ()
  r.quit_frame = quitting_at
  r.kept = {}
  for id, entry in pairs(log) do
    if entry.keep then r.kept[#r.kept + 1] = { id = id, text = entry.text, err = entry.err, raise = entry.raise } end
  end
  local f = assert(io.open(OUT, "w"))
  f:write(aigc.json.encode(r))
  f:close()
  -- quit: no client:close(), the state's closing (LÖVE's exit) collects the
  -- clients with their requests in flight; quitclose: close() here, whose
  -- canceled requests' on_error callbacks raise (every fifth NPC's).
  if MODE == "quitclose" then
    for _, entry in pairs(log) do entry.raise = true end
    local ok, err = pcall(client.close, client)
    r.close_raised = not ok and tostring(err) or nil
    f = assert(io.open(OUT, "w"))
    f:write(aigc.json.encode(r))
    f:close()
  end
end
