-- aigc in LÖVE's main thread and in love.thread workers at once
-- (spec/support/love_threads/main.lua, LÖVE 11 under xvfb-run against the
-- bundled server pausing between tokens): the main thread and two workers
-- each require aigc and stream; one worker's code returns while its stream
-- is in flight (LÖVE closes that thread's lua_State, which collects the
-- request on that thread while the others stream); a third worker then
-- requires aigc in a fresh state and streams beside the main thread's next
-- stream. Nothing may crash or hang; every stream but the one left gets its
-- whole reply. (README "Threads".)
--
-- Pending, saying why, where `love` or `xvfb-run` is missing or the LuaJIT
-- build is not there; under `make test` it runs once, in busted-jit (LÖVE
-- brings its own LuaJIT), as spec/love_spec.lua does.
local aigc = require "aigc"
local devserver = require "devserver"
local proc = require "procutil"

local TAIL = ", one two three four five six seven eight nine ten"   -- (main.lua's)

describe("aigc in LÖVE's main thread and two love.thread workers", function ()
  local reason = require("love_ready").why_not { "love", "xvfb-run", "xauth" }
  if reason then
    it("runs in LÖVE", function () pending(reason) end)
    return
  end

  local srv
  setup(function () srv = devserver.start { pause_ms = 25 } end)
  teardown(function () if srv then srv:stop() end end)

  it("each streams; a worker ending mid-stream takes its request with it; a fresh worker streams after it",
     function ()
    local root = proc.root()
    local out = os.tmpname()
    local ok, log = proc.sh(table.concat({
      "env -u OPENAI_API_KEY OPENAI_BASE_URL=" .. proc.quote(srv.base_url),
      "AIGC_THREADS_OUT=" .. proc.quote(out),
      "LUA_PATH=" .. proc.quote(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;"),
      "LUA_CPATH=" .. proc.quote(root .. "/build/jit/?.so;;"),
      "timeout 120 xvfb-run -a love " .. proc.quote(root .. "/spec/support/love_threads"),
    }, " "))
    local text = proc.read_file(out)
    os.remove(out)
    local r = text and aigc.json.decode(text)
    assert(ok and r, "the game failed:\n" .. log)
    assert.is_nil(r.error, r.error)
    assert.is_nil(log:find("PANIC", 1, true), log)
    assert.is_nil(log:find("Error", 1, true), log)
    -- The main thread's two streams, the first beside the two workers, the
    -- second beside the late one.
    assert.equal("from main" .. TAIL, r.main.text, tostring(r.main.text_err))
    assert.equal("from main again" .. TAIL, r.main.again, tostring(r.main.again_err))
    assert.is_true(r.main.text_deltas > 10 and r.main.again_deltas > 10)
    local w = r.workers
    assert.is_nil(w.raised, w.raised and w.raised.message)
    assert.is_nil(w.a_error or w.leaver_error or w.late_error)
    assert.equal("from a" .. TAIL, w.a.text, tostring(w.a.err))
    assert.equal("from late" .. TAIL, w.late.text, tostring(w.late.err))
    assert.is_true(w.a.deltas > 10 and w.late.deltas > 10)
    -- The leaver ended with its stream under way: its state's closing
    -- canceled it, and the server saw that connection go before the end.
    assert.is_true(w.leaver.left)
    assert.equal("running", w.leaver.status)
    assert.is_true(w.leaver.deltas >= 1)
    assert.is_true(srv:stats().client_closed_total >= 1, "no connection was closed early")
  end)
end)
