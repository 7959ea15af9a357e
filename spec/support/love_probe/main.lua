-- A LÖVE 11 game probing aigc as a game developer would (run by
-- spec/game_probe_spec.lua under xvfb-run against the bundled server):
-- 50 NPCs streaming at once, their deltas read each frame from client:step(0);
-- a speech reply fed to a QueueableSource chunk by chunk; an image reply made
-- a love.graphics Image through love.filesystem.newFileData; callbacks that
-- raise inside love.update; NPCs (userdata proxies whose __gc cancels) still
-- streaming when the game quits, collected inside love.quit and then by the
-- state's closing. It writes what it saw as JSON to $AIGC_PROBE_OUT from
-- love.quit; the spec checks counts, never times.
-- luacheck: globals love newproxy
local OUT = assert(os.getenv("AIGC_PROBE_OUT"), "AIGC_PROBE_OUT")
local BASE = assert(os.getenv("OPENAI_BASE_URL"), "OPENAI_BASE_URL")
local CROWD = 50

local aigc = require "aigc"
local r = { frames = 0, deltas = 0, frames_with_deltas = 0, done = 0, failed = {}, step_errors = {},
            audio = { chunks = 0, bytes = 0, queued = 0 }, image = {}, quit = {} }
local client, npcs, speech_req, image_req, raise_reqs
local pcm, pending_pcm = nil, ""
local quitting_at
local late = {}          -- NPCs still streaming at quit: what their callbacks saw

local function write_report ()
  local f = assert(io.open(OUT, "w"))
  f:write(aigc.json.encode(r))
  f:close()
end

-- An NPC: its request, and a userdata proxy whose __gc cancels it (LuaJIT's
-- tables have no finalizers).
local function spawn (id, entry)
  local npc = { id = id, text = {} }
  npc.req = client:chat_async {
    max_tokens = 40,
    messages = { { role = "user", content = "Tell me your story about a robot that learns to paint." } },
    stream = function (delta)
      if entry.canceled then entry.after_cancel = (entry.after_cancel or 0) + 1 end
      if delta and delta ~= "" then entry.deltas = (entry.deltas or 0) + 1; r.frame_deltas = r.frame_deltas + 1 end
    end,
    on_done = function (res)
      if entry.canceled then entry.after_cancel = (entry.after_cancel or 0) + 1 end
      entry.text = res.text; r.done = r.done + 1
    end,
    on_error = function (err)
      entry.err = err.kind
      if err.kind ~= "canceled" then r.failed[#r.failed + 1] = id .. ": " .. tostring(err) end
    end,
  }
  local proxy = newproxy(true)
  getmetatable(proxy).__gc = function ()
    local st = npc.req:status()
    if st == "queued" or st == "running" then entry.canceled = true; entry.gc_canceled = true end
    npc.req:cancel()
  end
  npc.proxy = proxy
  return npc
end

-- Speech as it arrives: 16-bit mono PCM at 24 kHz in whole samples (a chunk
-- may end mid-sample: the odd byte waits for the next chunk).
local function feed_audio (chunk)
  r.audio.chunks = r.audio.chunks + 1
  r.audio.bytes = r.audio.bytes + #chunk
  pending_pcm = pending_pcm .. chunk
  local whole = #pending_pcm - #pending_pcm % 2
  if whole == 0 then return end
  local data = love.sound.newSoundData(whole / 2, 24000, 16, 1)
  local bytes = pending_pcm:sub(1, whole)
  pending_pcm = pending_pcm:sub(whole + 1)
  -- (SoundData has no constructor from a string: sample by sample.)
  for i = 0, whole / 2 - 1 do
    local lo, hi = bytes:byte(2 * i + 1, 2 * i + 2)
    local v = hi * 256 + lo
    if v >= 32768 then v = v - 65536 end
    data:setSample(i, v / 32768)
  end
  if pcm:getFreeBufferCount() > 0 and pcm:queue(data) then r.audio.queued = r.audio.queued + 1 end
  pcm:play()
end

function love.load ()
  love.errorhandler = function (msg)
    r.error = debug.traceback(tostring(msg), 2)
    write_report()
    io.stderr:write("probe: ", r.error, "\n")
    os.exit(1)
  end
  client = aigc.client { base_url = BASE, model = "aigc-dev", max_retries = 0, timeout = 120,
                         max_starts_per_step = 8, max_bytes_per_step = 65536 }
  npcs = {}
  for i = 1, CROWD do
    local id = "npc" .. i
    local entry = {}
    late[id] = entry
    npcs[i] = spawn(id, entry)
  end
  pcm = love.audio.newQueueableSource(24000, 16, 1, 64)
  speech_req = client:speech_async { input = "Rooms are free upstairs, traveller.", response_format = "pcm",
                                     model = "tts-1", to = feed_audio }
  image_req = client:images_generate_async { prompt = "a knight in a tavern", size = "48x32",
                                             response_format = "b64_json", model = "dall-e-2" }
  -- Callbacks that raise: a stream callback (its request fails, kind
  -- "callback") and an on_done (step() reports it): love.update goes on.
  raise_reqs = {
    client:chat_async { messages = { { role = "user", content = "Echo: raise in stream" } },
                        stream = function (d) if d and d ~= "" then error("stream callback raised") end end },
    client:chat_async { messages = { { role = "user", content = "Echo: raise in on_done" } },
                        on_done = function () error("on_done raised") end },
  }
end

local function ended (req)
  local st = req:status()
  return st ~= "queued" and st ~= "running"
end

function love.update ()
  r.frames = r.frames + 1
  r.frame_deltas = 0
  local _, errs = client:step(0)
  for _, e in ipairs(errs or {}) do
    r.step_errors[#r.step_errors + 1] = tostring(type(e) == "table" and e.message or e)
  end
  if r.frame_deltas > 0 then r.frames_with_deltas = r.frames_with_deltas + 1 end
  r.deltas = r.deltas + r.frame_deltas
  r.max_deltas_in_frame = math.max(r.max_deltas_in_frame or 0, r.frame_deltas)
  -- The image, once here: a love.graphics Image made from its bytes.
  if not r.image.done and ended(image_req) then
    r.image.done = true
    local res, err = image_req:result()
    if res then
      local ok, img = pcall(function ()
        return love.graphics.newImage(love.filesystem.newFileData(res.data[1].bytes, "knight.png"))
      end)
      if ok then r.image.width, r.image.height = img:getDimensions() else r.image.error = tostring(img) end
    else
      r.image.error = tostring(err)
    end
  end
  if not r.audio.status and ended(speech_req) then
    r.audio.status = speech_req:status()
    local _, err = speech_req:result()
    r.audio.error = err and tostring(err) or nil
    r.audio.left_over = #pending_pcm
  end
  if not r.raise_status and ended(raise_reqs[1]) and ended(raise_reqs[2]) then
    local _, err = raise_reqs[1]:result()
    r.raise_status = { raise_reqs[1]:status(), err and err.kind, raise_reqs[2]:status() }
  end
  -- The first crowd ended (all replied): a second crowd starts; a few frames
  -- later the game quits with it streaming.
  if not r.second and r.done >= CROWD and r.audio.status and r.image.done and r.raise_status then
    r.second = r.frames
    r.first_done = r.done
    npcs = {}
    for i = 1, 10 do
      local id = "late" .. i
      local entry = {}
      late[id] = entry
      npcs[i] = spawn(id, entry)
    end
  end
  if r.second and not quitting_at then
    local streaming = 0
    for _, npc in ipairs(npcs) do if late[npc.id].deltas then streaming = streaming + 1 end end
    if streaming >= 2 then
      quitting_at = r.frames
      r.quit.active = client:active()
      love.event.quit(0)
    end
  end
  if r.frames > 5000 and not quitting_at then r.error = "timed out"; quitting_at = r.frames; love.event.quit(0) end
end

function love.draw ()
  love.graphics.print(("frame %d  deltas %d  done %d"):format(r.frames, r.deltas, r.done), 10, 10)
end

function love.quit ()
  -- Half the late NPCs are dropped here, collected inside love.quit (their
  -- __gc cancels mid-stream); the other half, and the client, stay for the
  -- state's closing after love.quit returns.
  for i = #npcs, 1, -2 do table.remove(npcs, i) end
  collectgarbage("collect"); collectgarbage("collect")
  for id, entry in pairs(late) do
    if entry.gc_canceled then r.quit.gc_canceled = (r.quit.gc_canceled or 0) + 1 end
    if entry.after_cancel then r.quit.after_cancel = (r.quit.after_cancel or 0) + entry.after_cancel end
    if id:match("^npc") and entry.text then r.replied = (r.replied or 0) + 1 end
  end
  r.quit.kept = #npcs
  write_report()
end
