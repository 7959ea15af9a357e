-- aigc as a game developer uses it in LÖVE 11 (under xvfb-run, against the
-- bundled server pausing between tokens): spec/support/love_probe/main.lua
-- streams 50 NPCs at once and reads their deltas each frame through
-- client:step(0), feeds a speech reply to a QueueableSource chunk by chunk
-- (OpenAL Soft's null device: ALSOFT_DRIVERS=null), makes an image reply a
-- love.graphics Image through love.filesystem.newFileData, has callbacks
-- raise inside love.update, and quits with NPCs streaming (some collected
-- inside love.quit, their __gc canceling; the rest by the state's closing);
-- spec/support/love_restart/main.lua restarts LÖVE (a new Lua state in the
-- same process, aigc and its C module required again) three times with 20
-- streams in flight. Frames are counted, never timed.
--
-- Pending, saying why, where `love` or `xvfb-run` is missing or the LuaJIT
-- build is not there (as spec/love_stress_spec.lua).
local aigc = require "aigc"
local devserver = require "devserver"
local proc = require "procutil"
local love_ready = require "love_ready"

describe("a game's use of aigc in LÖVE", function ()
  local reason = love_ready.why_not { "love", "xvfb-run", "xauth" }
  if reason then
    it("runs in LÖVE", function () pending(reason) end)
    return
  end

  local srv
  setup(function () srv = devserver.start { pause_ms = 20 } end)
  teardown(function () if srv then srv:stop() end end)

  -- Plays the game in spec/support/<game>: its exit status, its output and
  -- what it wrote to $AIGC_PROBE_OUT.
  local function play (game)
    local root = proc.root()
    local out = os.tmpname()
    os.remove(out)
    srv:reset()
    local ok, log = proc.sh(table.concat({
      "env -u OPENAI_API_KEY ALSOFT_DRIVERS=null OPENAI_BASE_URL=" .. proc.quote(srv.base_url),
      "AIGC_PROBE_OUT=" .. proc.quote(out),
      "LUA_PATH=" .. proc.quote(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;"),
      "LUA_CPATH=" .. proc.quote(root .. "/build/jit/?.so;;"),
      "timeout 240 " .. love_ready.xvfb_run("-a") .. "love " .. proc.quote(root .. "/spec/support/" .. game),
    }, " "))
    local text = proc.read_file(out)
    os.remove(out)
    return ok, log, text
  end

  it("50 NPCs streaming, speech into a QueueableSource, an image into newImage, raising callbacks, "
     .. "a quit with NPCs streaming", function ()
    local ok, log, text = play("love_probe")
    local r = text and aigc.json.decode(text)
    assert(ok and r, "the game failed:\n" .. log)
    assert.is_nil(r.error, r.error)
    -- The crowd: every NPC's whole reply, its deltas spread over frames.
    assert.same({}, r.failed)
    assert.equal(50, r.replied)
    assert.is_true(r.deltas >= 50 * 10, "deltas " .. r.deltas)
    assert.is_true(r.frames_with_deltas > 1)
    -- The speech reply: 1.75 s of 24 kHz 16-bit PCM (50 ms a character), in
    -- chunks, every byte queued as whole samples.
    assert.equal("done", r.audio.status, r.audio.error)
    assert.equal(#"Rooms are free upstairs, traveller." * 50 * 48, r.audio.bytes)
    assert.equal(0, r.audio.left_over)
    assert.is_true(r.audio.chunks > 1 and r.audio.queued >= 1)
    -- The image: a PNG of the size asked for.
    assert.is_nil(r.image.error, r.image.error)
    assert.same({ 48, 32 }, { r.image.width, r.image.height })
    -- A stream callback that raised failed its request (kind "callback"); an
    -- on_done that raised was reported by step(), once; love.update went on.
    assert.same({ "failed", "callback", "done" }, r.raise_status)
    assert.equal(1, #r.step_errors)
    assert.matches("on_done raised", r.step_errors[1])
    -- The quit: 10 late NPCs streaming, 5 collected inside love.quit (each
    -- __gc canceled a request in flight, nothing delivered after), 5 left
    -- to the state's closing; LÖVE exited cleanly.
    assert.is_true(r.quit.active >= 5, "active at quit " .. r.quit.active)
    assert.equal(5, r.quit.gc_canceled)
    assert.is_nil(r.quit.after_cancel)
    assert.equal(5, r.quit.kept)
    assert.is_nil(log:find("PANIC", 1, true), log)
    assert.is_nil(log:find("Error", 1, true), log)
  end)

  it("love.event.quit('restart') with 20 streams in flight, three times: the new state's aigc works", function ()
    local ok, log, text = play("love_restart")
    assert(ok and text, "the game failed:\n" .. log)
    local lines = {}
    for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.equal(4, #lines, text)
    for i = 1, 3 do
      local n = tonumber(lines[i]:match("^run " .. i .. " restarted with (%d+) active$"))
      assert.is_true(n ~= nil and n > 0, lines[i])
    end
    assert.equal("run 4: 20 done, 0 failed", lines[4])
  end)
end)

-- README, "Defold and other LuaJIT engines": an engine's Lua needs `require`,
-- the C API and the standard libraries; `io`, `os` and `debug` are not
-- needed to load aigc (without `debug`, only tracebacks and the positions of
-- misuse errors are missing: spec/leftovers_probe_spec.lua).
describe("an engine's Lua with some standard libraries removed", function ()
  local luachild = require "luachild"
  local SCRIPT = [[
    local name = arg[1]
    local req = require
    _G[name] = nil
    package.loaded[name] = nil
    local ok, err = pcall(req, "aigc")
    print(ok and "loaded" or ("failed: " .. tostring(err)))
  ]]
  it("loads without io and os", function ()
    for _, name in ipairs { "io", "os" } do
      local r = luachild.run(SCRIPT, { args = { name } })
      assert.equal(0, r.status, r.stderr)
      assert.equal("loaded\n", r.stdout, name)
    end
  end)
  it("loads without debug", function ()
    local r = luachild.run(SCRIPT, { args = { "debug" } })
    assert.equal(0, r.status, r.stderr)
    assert.equal("loaded\n", r.stdout)
  end)
end)
