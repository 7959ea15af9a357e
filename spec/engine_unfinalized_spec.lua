-- An engine's __gc is not always called (nor an index's or a lock's: the
-- state's sentinel keeps all three): Lua frees an engine with nothing
-- told when a memory error ends the call of its finalizer (the host OOM
-- spec's runs of 2 on Lua 5.1 found it: "malloc(): invalid next size") or
-- when debug.setmetatable took its metatable away. The state's sentinel
-- kept its engines on a C list of pointers into their userdata, unlinked
-- by each engine's __gc: such an engine stayed on the list after Lua freed
-- it, and the next engine's unlink wrote into freed memory (ASan:
-- heap-use-after-free in unlink_engine), as did lua_close's walk. Under the
-- ASan suite the child runs on the ASan host, so any such write is its
-- exit status; on a plain build it corrupted the allocator's heap.
describe("a client, vector index or lock whose __gc never runs", function ()
  local luachild = require "luachild"

  local SCRIPT = [[
    local aigc = require "aigc"
    local core = require "aigc.core"
    local url = "http://127.0.0.1:9/v1"   -- (nothing is sent)
    local lockpath = os.tmpname() .. ".lock"
    local function unfinalized ()   -- (a client, an index, a lock: Lua frees them with no __gc called)
      local e = core.engine { base_url = url }
      e:close()
      debug.setmetatable(e, nil)
      debug.setmetatable(core.vec.index(), nil)   -- (empty: nothing of it leaks)
      local lock = assert(core.lockfile(lockpath))
      lock:close()
      debug.setmetatable(lock, nil)
    end
    for round = 1, 3 do
      local kept = {}
      for i = 1, 40 do
        if i % 2 == 0 then unfinalized()
        else
          kept[#kept + 1] = aigc.client { base_url = url }
          kept[#kept + 1] = core.vec.index()
          kept[#kept + 1] = assert(core.lockfile(lockpath .. i))
        end
      end
      if round < 3 then kept = nil end   -- (the rest are collected: their __gc unlinks them)
      collectgarbage(); collectgarbage()
      _G.last = kept
    end
    print("ok")   -- (lua_close then frees the engines still held)
  ]]

  it("leaves nothing behind that a later engine or lua_close touches", function ()
    local r = luachild.run(SCRIPT, { env = { ASAN_OPTIONS = "detect_leaks=0:abort_on_error=0:exitcode=23" } })
    assert.equal("ok\n", r.stdout, r.stderr)
    assert.is_nil(r.stderr:find("Sanitizer", 1, true), r.stderr)
    assert.equal(0, r.status, r.stderr)
  end)
end)

-- A request's C state (its core) is on its engine's lists from submit on,
-- and a dropped request's core was held by its handle alone: when Lua
-- could not call its finalizer, it freed the core still on those lists,
-- and the next request's unlink (or a timer's walk) read and wrote freed
-- memory (ASan: heap-use-after-free in aigc_transfer_tick). The engine
-- now holds each core for as long as its request has a slot.
describe("a request whose finalizer never runs", function ()
  local luachild = require "luachild"
  local devserver = require "devserver"
  local srv
  devserver.fixture(_ENV, function (s) srv = s end)

  local SCRIPT = [[
    local aigc = require "aigc"
    local c = aigc.client { base_url = arg[1], max_retries = 0, model = "m" }
    local HI = { { role = "user", content = "hi" } }
    local mt = debug.getregistry()["aigc.request.core"]
    local function is_finalizer (v) return type(v) == "userdata" and debug.getmetatable(v) == mt end
    local function take_finalizer (req)   -- (the object whose __gc frees the request's C state)
      local found
      if _VERSION == "Lua 5.4" then
        for n = 1, 16 do if is_finalizer(debug.getuservalue(req, n)) then found = debug.getuservalue(req, n) end end
      else
        for _, v in pairs((debug.getuservalue or debug.getfenv)(req) or {}) do
          if is_finalizer(v) then found = v end
        end
      end
      assert(found, "no finalizer found")
      debug.setmetatable(found, nil)
    end
    local done = {}
    for round = 1, 3 do
      for i = 1, 12 do
        local r = c:chat_async { messages = HI }
        if i % 3 == 0 then r:wait(); done[#done + 1] = r end   -- (ended first, dropped below)
        if i % 2 == 0 then take_finalizer(r) end
      end
      if round > 1 then done = {} end
      collectgarbage(); collectgarbage()
      local turns = 0
      while c:step(0.05) > 0 and turns < 200 do turns = turns + 1 end
      collectgarbage(); collectgarbage()
    end
    local res = assert(c:chat { messages = HI })
    print("active " .. c:active() .. ", " .. res.text:sub(1, 5))
    c:close()
    collectgarbage(); collectgarbage()
  ]]

  it("leaves nothing on the engine's lists that Lua frees", function ()
    local r = luachild.run(SCRIPT, { args = { srv.base_url },
                                     env = { ASAN_OPTIONS = "detect_leaks=0:abort_on_error=0:exitcode=23" } })
    assert.equal("active 0, Hello\n", r.stdout, r.stderr)
    assert.is_nil(r.stderr:find("Sanitizer", 1, true), r.stderr)
    assert.equal(0, r.status, r.stderr)
  end)
end)
