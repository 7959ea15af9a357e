-- lua_close (a C host closing its state, LÖVE quitting) runs the game's
-- finalizers, and a finalizer may call aigc. A request submitted by one of
-- them, to a client still open (its object made after the client: its
-- finalizer runs first), got no finalizer of its own: Lua registers none
-- while lua_close runs them (5.4: the state is closing; 5.1-5.3: the list
-- of objects to finalize was already taken). Its easy handle and the copies
-- of its secrets then leaked with each closed state: the client's __gc only
-- unlinked it, leaving those to the request's __gc, which never came.
-- (LeakSanitizer reports it: under the ASan suite the child runs on the
-- ASan host and a leak is its exit status.) On LuaJIT, whose lua_close
-- finalizes in rounds, the request's __gc did run, in the next round -- after
-- the first had unloaded aigc/core.so: a segmentation fault at quit.
local devserver = require "devserver"

-- The start of every child script here: on_gc(fn) makes an object whose
-- finalizer is fn (a userdata on 5.1 and LuaJIT, where only a userdata has
-- one), kept until lua_close.
local ON_GC = [[
  local function on_gc (fn)
    local o
    if newproxy then
      o = newproxy(true)
      getmetatable(o).__gc = fn
    else
      o = setmetatable({}, { __gc = fn })
    end
    _G.kept = _G.kept or {}
    _G.kept[#_G.kept + 1] = o
  end
]]

describe("lua_close running a finalizer that calls aigc", function ()
  local luachild = require "luachild"
  local srv
  devserver.fixture(_ENV, function (s) srv = s end)

  local SCRIPT = ON_GC .. [[
    local aigc = require "aigc"
    local url = arg[1]
    local HI = { { role = "user", content = "hi there" } }
    local c = aigc.client { base_url = url, max_retries = 0, api_key = "sk-close-finalizer" }
    -- requests in flight, a stream mid-delta, a task waiting
    for _ = 1, 2 do
      c:chat_async { messages = HI, headers = { ["x-aigc-fault"] = "pause=30" }, stream = function () end,
                     on_done = function () end, on_error = function () end }
    end
    c:spawn(function () c:chat { messages = HI, headers = { ["x-aigc-fault"] = "pause=30" } } end)
    for _ = 1, 5 do c:step(0.02) end
    local function goodbye ()
      local req = c:chat_async { messages = HI, stream = function () end,
                                 on_done = function () end, on_error = function () end }
      c:spawn(function () c:chat { messages = HI } end)
      io.stderr:write("submitted in lua_close: ", req:status(), "\n")
    end
    on_gc(goodbye)   -- (made after c: its finalizer runs before c's)
    _G.client = c   -- (collected by lua_close only)
    print("ok")
  ]]

  -- Runs script in a child: its finalizer wrote `said` to stderr, and the
  -- child exited cleanly (under the ASan suite: LeakSanitizer found nothing).
  local function closes_cleanly (script, said)
    local r = luachild.run(script, { args = { srv.base_url } })
    assert.equal("ok\n", r.stdout, r.stderr)
    assert.matches(said, r.stderr)
    assert.is_nil(r.stderr:find("Sanitizer", 1, true), r.stderr)
    assert.is_nil(r.stderr:find("sk-", 1, true), r.stderr)
    assert.equal(0, r.status, r.stderr)
  end

  it("leaks nothing: the request it submitted is freed by the client's __gc", function ()
    closes_cleanly(SCRIPT, "submitted in lua_close: %a+")
  end)

  -- A finalizer that makes a client while lua_close runs them: the engine
  -- got no __gc of its own (Lua registers none then), so its multi handle,
  -- its config, its secrets and the request it made leaked with each closed
  -- state. Freed now by the state's sentinel, whose __gc runs after the
  -- game's finalizers (its object is older: made when aigc was loaded).
  local MAKER = ON_GC .. [[
    local aigc = require "aigc"
    local url = arg[1]
    aigc.client { base_url = url }:close()   -- (its modules loaded now: LuaJIT refuses some inside __gc)
    local function goodbye ()
      local c = aigc.client { base_url = url, max_retries = 0, api_key = "sk-made-in-close",
                              headers = { ["x-game"] = "quitting" } }
      local req = c:chat_async { messages = { { role = "user", content = "bye" } },
                                 stream = function () end }
      c:step(0)
      io.stderr:write("client made in lua_close: ", req:status(), "\n")
    end
    on_gc(goodbye)
    print("ok")
  ]]

  it("leaks nothing when it makes a client: the state's sentinel frees it", function ()
    closes_cleanly(MAKER, "client made in lua_close: %a+")
  end)

  -- A vector index made by such a finalizer got no __gc either: its rows
  -- (malloc'ed) leaked with each closed state. On the sentinel's list now.
  local INDEX = ON_GC .. [[
    local vec = require "aigc.vec"
    local function goodbye ()
      local x = vec.index()
      for i = 1, 40 do x:add { 1, 2, 3, i } end
      io.stderr:write("index made in lua_close: ", x:len(), "\n")
    end
    on_gc(goodbye)
    print("ok")
  ]]

  it("leaks nothing when it makes a vector index: the state's sentinel frees its rows", function ()
    closes_cleanly(INDEX, "index made in lua_close: 40")
  end)

  -- An object made before aigc was loaded is finalized after the sentinel,
  -- and on 5.1-5.4 no C of aigc runs after that: a client (or an index, a
  -- lock) its finalizer made leaked. Refused now, with a clear error (the
  -- state is going: nothing could free it). LuaJIT's lua_close finalizes
  -- in rounds: the next one runs the new client's own __gc, and it is made.
  local OLDER = ON_GC .. [[
    local url = arg[1]
    local aigc, vec   -- (loaded below: npc is older than aigc's loading)
    local function goodbye ()
      local said = {}
      local ok, c = pcall(aigc.client, { base_url = url, max_retries = 0, api_key = "sk-older-than-aigc" })
      if ok then
        local req = c:chat_async { messages = { { role = "user", content = "bye" } }, stream = function () end }
        c:step(0)
        said[1] = "client " .. req:status()
      else
        said[1] = "client refused: " .. tostring(c)
      end
      local made, x = pcall(vec.index)
      if made then x:add { 1, 2, 3 } end
      said[2] = made and "index made" or "index refused: " .. tostring(x)
      io.stderr:write(table.concat(said, "; "), "\n")
    end
    on_gc(goodbye)
    aigc, vec = require "aigc", require "aigc.vec"
    aigc.client { base_url = url }:close()   -- (its modules loaded now: LuaJIT refuses some inside __gc)
    io.stderr:write(jit and "rounds\n" or "one pass\n")
    print("ok")
  ]]

  it("leaks nothing when the finalizer of an object older than aigc makes a client or an index", function ()
    local r = luachild.run(OLDER, { args = { srv.base_url } })
    if r.stderr:find("rounds", 1, true) then   -- (LuaJIT)
      closes_cleanly(OLDER, "client %a+; index made")
    else
      -- (located at the caller's line, as misuse is)
      closes_cleanly(OLDER, "client refused: [^;]*:%d+: aigc: the Lua state is closing; "
                            .. "index refused: [^;]*:%d+: aigc: the Lua state is closing")
      assert.is_nil(r.stderr:find("aigc/", 1, true), r.stderr)
    end
  end)
end)

-- A host that closes a state and goes on (a game's level, a server's
-- worker): a lock (core.lockfile) taken by a finalizer while lua_close
-- ran them got no __gc, and kept its descriptor open, its flock held and
-- its file in place for the rest of the process; the next state's
-- lockfile on the same path then said "locked" for ever.
describe("lua_close, in a host that goes on, after a finalizer took a lock", function ()
  local luachild = require "luachild"

  -- Runs, in the test host, a state whose finalizer (of an object made
  -- after aigc's loading, or before it when `older`) takes the lock at
  -- path; that state closed, the host's own state takes the same lock.
  local HOST = ("local ON_GC = %q\n"):format(ON_GC) .. [[
    local core = require "aigc.core"
    local path, older = arg[1], arg[2] == "older"
    local function fds ()   -- this host's descriptors open on path (the shell's parent: the host)
      local p = io.popen("ls -l /proc/$PPID/fd")
      local n = 0
      for line in p:lines() do
        if line:find(path, 1, true) then n = n + 1 end
      end
      p:close()
      return n
    end
    io.stderr:write(jit and "rounds\n" or "one pass\n")
    local ok, err = aigc_host_closed_state(ON_GC .. [=[
      local path, older = ...
      local core
      local function goodbye ()
        local made, lock = pcall(core.lockfile, path)
        _G.late = lock
        io.stderr:write("lockfile in lua_close: ", made and tostring(lock) or lock, "\n")
      end
      if older ~= "older" then core = require "aigc.core" end
      on_gc(goodbye)
      core = require "aigc.core"
    ]=], path, older and "older" or "")
    assert(ok, err)
    local file = io.open(path)
    if file then file:close() end
    local after = fds()
    local lock, _, code = core.lockfile(path)
    print(("fds on it %d, file %s, lock %s"):format(after, file and "left" or "removed",
                                               lock and "free" or tostring(code)))
    if lock then lock:close() end
  ]]

  local function run_host (older)
    local host = assert(luachild.host())
    local path = os.tmpname()
    os.remove(path)
    local r = luachild.run(HOST, { lua = host, args = { path, older and "older" or "young" } })
    os.remove(path)
    assert.is_nil(r.stderr:find("Sanitizer", 1, true), r.stderr)
    assert.equal(0, r.status, r.stderr)
    return r
  end

  it("finds the lock released and its file removed: the state's sentinel closed it", function ()
    local r = run_host(false)
    assert.matches("lockfile in lua_close: aigc.lock %(.*, held%)", r.stderr)
    assert.equal("fds on it 0, file removed, lock free\n", r.stdout, r.stderr)
  end)

  it("finds the lock free when the finalizer of an object older than aigc asked for it", function ()
    local r = run_host(true)
    assert.equal("fds on it 0, file removed, lock free\n", r.stdout, r.stderr)
    if r.stderr:find("rounds", 1, true) then   -- (LuaJIT: made, and closed by its own __gc in the next round)
      assert.matches("lockfile in lua_close: aigc.lock %(.*, held%)", r.stderr)
    else
      assert.matches("lockfile in lua_close: closed_state:%d+: aigc: the Lua state is closing", r.stderr)
    end
  end)
end)
