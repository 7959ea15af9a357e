-- aigc in LÖVE 11 under a game's stress (spec/support/love_stress/main.lua,
-- under xvfb-run against the bundled server, the server pausing between
-- tokens so that replies are in flight while things happen): 40 NPCs
-- streaming at once while the frame loop runs, NPCs dropped mid-reply (a
-- userdata's __gc cancels), callbacks that raise, a request to a server that
-- never answers, a love.thread worker with its own aigc, a hot reload
-- (package.loaded cleared, aigc required again, the old client dropped with a
-- request in flight), and love.event.quit mid-stream without client:close();
-- and aigc in the main thread and love.thread workers streaming at once, one
-- worker ending mid-stream. Frames are counted, never timed.
--
-- Pending, saying why, where `love` or `xvfb-run` is missing or the LuaJIT
-- build is not there; under `make test` it runs once, in LuaJIT's busted run (LÖVE
-- brings its own LuaJIT), as spec/love_spec.lua does.
local aigc = require "aigc"
local devserver = require "devserver"
local proc = require "procutil"
local love_ready = require "love_ready"

local function why_not ()
  return love_ready.why_not { "love", "xvfb-run", "xauth" }
end

describe("aigc in LÖVE under a game's stress", function ()
  local reason = why_not()
  if reason then
    it("runs in LÖVE", function () pending(reason) end)
    return
  end

  local srv
  setup(function () srv = devserver.start { pause_ms = 25 } end)
  teardown(function () if srv then srv:stop() end end)

  -- Plays the stress game in `mode`: its exit status, its output and its report.
  local function play (mode)
    local root = proc.root()
    local out = os.tmpname()
    srv:reset()
    local ok, log = proc.sh(table.concat({
      "env -u OPENAI_API_KEY OPENAI_BASE_URL=" .. proc.quote(srv.base_url),
      "AIGC_STRESS=" .. mode, "AIGC_STRESS_OUT=" .. proc.quote(out),
      "LUA_PATH=" .. proc.quote(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;"),
      "LUA_CPATH=" .. proc.quote(root .. "/build/jit/?.so;;"),
      "timeout 240 " .. love_ready.xvfb_run("-a") .. "love " .. proc.quote(root .. "/spec/support/love_stress"),
    }, " "))
    local text = proc.read_file(out)
    os.remove(out)
    local report = text and aigc.json.decode(text)
    return ok, log, report
  end

  it("40 NPCs streaming, dropped mid-reply, raising callbacks, a stalled server, a thread, a hot reload: "
     .. "no frame stops, nothing crashes", function ()
    local ok, log, r = play("crowd")
    assert(ok and r, "the game failed:\n" .. log)
    assert.is_nil(r.error, r.error)
    -- The frame loop went on: the stalled request was running while the
    -- frames ran (no step waited on it), until the reload dropped it.
    assert.equal("running", r.stalled.status_before_drop)
    local stalled_frames = r.stalled.frames_before_drop
    assert.is_true(stalled_frames >= 30, "frames while stalled: " .. tostring(stalled_frames))
    assert.is_true(r.frames >= r.stalled.drop_frame)
    -- max_starts_per_step = 8: no step took more NPCs from the queue.
    assert.is_true(r.max_started_in_a_step >= 1 and r.max_started_in_a_step <= 8, r.max_started_in_a_step)
    -- Dropped NPCs: some were mid-reply, canceled by their finalizers, and
    -- nothing of a canceled request was delivered after.
    -- (the 18 NPCs not kept: a frame drops one, some drop themselves in their callback)
    assert.equal(18, r.dropped + (r.dropped_in_callback or 0))
    assert.is_true(r.gc_canceled >= 1, "no NPC was dropped mid-reply (gc_canceled 0)")
    assert.is_true((r.dropped_in_callback or 0) >= 1, "no NPC was dropped from inside its stream callback")
    assert.equal(0, r.delivered_after_cancel)
    -- Every NPC kept got its whole reply, or the error its server sent.
    local raising, replied = 0, 0
    for _, k in ipairs(r.kept) do
      if k.id:match("^npc%d+$") and tonumber(k.id:match("%d+")) % 10 == 3 then
        assert.equal("http", k.err, k.id)
      else
        assert.is_string(k.text, k.id .. ": " .. tostring(k.err))
        assert.matches("^Once upon a time", k.text)
        replied = replied + 1
      end
      if k.raise then raising = raising + 1 end
    end
    assert.equal(22, #r.kept)
    assert.equal(18, replied)
    -- Each raising callback's error was reported once, by step().
    assert.equal(raising, r.raised)
    assert.equal(raising, #r.callback_errors)
    for _, e in ipairs(r.callback_errors) do assert.matches("NPC npc%d+ on_%a+ raised", e) end
    -- The hot reload: a new module, the same null, requests on its client done.
    assert.is_true(r.reload.new_module)
    assert.is_true(r.reload.same_null)
    assert.equal('{"a":[]}', r.reload.json_roundtrip)
    assert.same({ "reload 1", "reload 2", "reload 3", "reload 4", "reload 5" }, r.reload.texts)
    -- The thread's own state required aigc and made a blocking call.
    assert.equal("from the thread", r.thread.text, tostring(r.thread.error))
    -- The server saw the stalled request's connection go when its client was dropped.
    assert.is_true(srv:stats().client_closed_total >= 1)
  end)

  -- (stress_threads.lua) The main thread and two workers each stream; one
  -- worker's code returns while its stream is in flight (LÖVE closes that
  -- thread's lua_State, collecting the request on that thread while the
  -- others stream); a fresh worker then requires aigc and streams beside
  -- the main thread's next stream. README "What is thread-safe".
  it("aigc in the main thread and love.thread workers at once: a worker ending mid-stream takes its "
     .. "request with it, a fresh worker streams after it", function ()
    local TAIL = ", one two three four five six seven eight nine ten"   -- (stress_threads.lua's)
    local ok, log, r = play("threads")
    assert(ok and r, "the game failed:\n" .. log)
    assert.is_nil(r.error, r.error)
    assert.is_nil(log:find("PANIC", 1, true), log)
    assert.is_nil(log:find("Error", 1, true), log)
    assert.equal("from main" .. TAIL, r.main.text, tostring(r.main.text_err))
    assert.equal("from main again" .. TAIL, r.main.again, tostring(r.main.again_err))
    assert.is_true(r.main.text_deltas > 10 and r.main.again_deltas > 10)
    local w = r.workers
    assert.is_nil(w.raised, w.raised and w.raised.message)
    assert.is_nil(w.a_error or w.leaver_error or w.late_error)
    assert.equal("from a" .. TAIL, w.a.text, tostring(w.a.err))
    assert.equal("from late" .. TAIL, w.late.text, tostring(w.late.err))
    assert.is_true(w.a.deltas > 10 and w.late.deltas > 10)
    -- The leaver went with its stream under way: its state's closing
    -- canceled it, and the server saw that connection go.
    assert.is_true(w.leaver.left)
    assert.equal("running", w.leaver.status)
    assert.is_true(w.leaver.deltas >= 1)
    assert.is_true(srv:stats().client_closed_total >= 1, "no connection was closed early")
  end)

  it("love.event.quit mid-stream, without client:close(): LÖVE exits cleanly", function ()
    local ok, log, r = play("quit")
    assert(ok and r, "the game failed:\n" .. log)
    assert.is_nil(r.error, r.error)
    assert.is_true(r.deltas > 0)
    assert.is_true(r.quit_with_active > 4, "active at quit: " .. tostring(r.quit_with_active))
    assert.is_nil(log:find("Error", 1, true), log)
    assert.is_nil(log:find("PANIC", 1, true), log)
  end)
  it("love.quit closing the client mid-stream, its callbacks raising: close() does not raise, each error "
     .. "is written to stderr once", function ()
    local ok, log, r = play("quitclose")
    assert(ok and r, "the game failed:\n" .. log)
    assert.is_nil(r.error, r.error)
    assert.is_nil(r.close_raised, r.close_raised)
    assert.is_true(r.quit_with_active > 4, "active at quit: " .. tostring(r.quit_with_active))
    local _, reported = log:gsub("aigc: error in a callback %(no step%(%) collected it before the client closed%): "
                                 .. "[^\n]*NPC npc%d+ on_%a+ raised", "")
    assert.is_true(r.raised >= 30, "raised " .. r.raised)
    assert.equal(r.raised, reported + #r.callback_errors)
  end)
  it("a shipped game: aigc/*.lua inside the .love, aigc/core.so next to it (README, What goes where)", function ()
    if not proc.execute("command -v zip >/dev/null 2>&1") then
      pending("zip is not installed (it makes the .love archive)")
      return
    end
    local root = proc.root()
    local dir = os.tmpname()
    os.remove(dir)
    local out = dir .. "/out.txt"
    assert(proc.execute(("mkdir -p %s/src/aigc %s/aigc && cp %s/build/jit/aigc/core.so %s/aigc/core.so")
      :format(proc.quote(dir), proc.quote(dir), proc.quote(root), proc.quote(dir))))
    -- lua/aigc/*.lua but the bundled server's files (README: not needed in a game)
    assert(proc.execute(("for f in %s/lua/aigc/*.lua; do case ${f##*/} in devserver*) ;; "
                         .. "*) cp \"$f\" %s/src/aigc/;; esac; done"):format(proc.quote(root), proc.quote(dir))))
    local main = assert(io.open(dir .. "/src/main.lua", "w"))
    main:write([[
package.cpath = love.filesystem.getSourceBaseDirectory() .. "/?.so;" .. package.cpath
local aigc = require "aigc"
local client, req, frames
function love.load ()
  client = aigc.client { model = "aigc-dev", max_starts_per_step = 8, max_bytes_per_step = 65536 }
  req, frames = client:chat_async { messages = { { role = "user", content = "Repeat after me: shipped" } } }, 0
end
function love.update ()
  frames = frames + 1
  client:step(0)
  local st = req:status()
  if (st ~= "queued" and st ~= "running") or frames > 5000 then
    local res, err = req:result()
    local f = assert(io.open(os.getenv("AIGC_SHIP_OUT"), "w"))
    f:write(st, " ", res and res.text or tostring(err), " ", tostring(package.loaded["aigc.core"] ~= nil))
    f:close()
    love.event.quit(0)
  end
end
]])
    main:close()
    local conf = assert(io.open(dir .. "/src/conf.lua", "w"))
    conf:write("function love.conf (t) t.modules.audio = false; t.modules.sound = false end\n")
    conf:close()
    assert(proc.execute(("cd %s/src && zip -qr ../game.love ."):format(proc.quote(dir))))
    local ok, log = proc.sh(table.concat({
      -- (from its own folder: nothing of this checkout on the default paths)
      "cd " .. proc.quote(dir) .. " && env -u OPENAI_API_KEY -u LUA_PATH -u LUA_CPATH",
      "OPENAI_BASE_URL=" .. proc.quote(srv.base_url),
      "AIGC_SHIP_OUT=" .. proc.quote(out),
      "timeout 120 " .. love_ready.xvfb_run("-a") .. "love game.love",
    }, " "))
    local text = proc.read_file(out)
    proc.execute("rm -rf " .. proc.quote(dir))
    assert(ok and text, "the shipped game failed:\n" .. log)
    assert.equal("done shipped true", text)
  end)
  it("`love examples/love` from a checkout, no LUA_PATH or LUA_CPATH: main.lua finds aigc itself (README)", function ()
    local root = proc.root()
    local base = os.tmpname()
    local report, shot = base .. ".json", base .. ".png"
    local ok, log = proc.sh(table.concat({
      "cd " .. proc.quote(root) .. " && env -u OPENAI_API_KEY -u LUA_PATH -u LUA_CPATH -u AIGC_ROOT",
      "OPENAI_BASE_URL=" .. proc.quote(srv.base_url),
      "AIGC_LOVE_TEST=" .. proc.quote(("frames:20,report:%s,shot:%s"):format(report, shot)),
      "timeout 200 " .. love_ready.xvfb_run("-a -s '-screen 0 1024x768x24'") .. "love examples/love",
    }, " "))
    local text = proc.read_file(report)
    os.remove(base); os.remove(report); os.remove(shot)
    assert(ok and text, "the tavern failed:\n" .. log)
    local r = assert(aigc.json.decode(text))
    assert.is_nil(r.error, r.error)
    assert.is_true(r.frames >= 20, "frames " .. tostring(r.frames))
    assert.is_true(r.replies >= 1, "replies " .. tostring(r.replies))
  end)
end)
