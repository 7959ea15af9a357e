-- An external event loop (client:watch / client:act): what the watcher is
-- told must be enough to drive every request and task to its end, with a
-- host that acts only on the sockets and the one-shot timer it was told
-- about. A hang there freezes a game's NPC for ever.
local aigc = require "aigc"
local devserver = require "devserver"
local proc = require "procutil"

warn("@on")

local params = devserver.params
local now = aigc.now
local SCALE = tonumber(os.getenv("AIGC_TIMEOUT_SCALE")) or 1

-- A host loop as a game engine or luv has one: the sockets it watches and
-- one one-shot timer, set only by what aigc tells it. `early`: the timer
-- fires after that fraction of the time it was given (libuv counts from
-- its cached clock: it may fire early). Every error act() returns is kept.
local function new_host (c, opts)
  opts = opts or {}
  local host = { fds = {}, log = {}, errors = {}, timer_calls = 0, problems = {} }
  c:watch(function (fd, what)
    host.log[#host.log + 1] = fd .. ":" .. what
    if what == "remove" then
      if not host.fds[fd] then host.problems[#host.problems + 1] = "remove of fd " .. fd .. ", never watched" end
      host.fds[fd] = nil
    else
      host.fds[fd] = what
      host.watched = (host.watched or 0) + 1
    end
    if opts.on_socket then opts.on_socket(fd, what) end
  end, function (s)
    host.timer_calls = host.timer_calls + 1
    host.last_timer = s or "nil"
    host.timer = s and now() + s * (opts.early or 1) or nil
  end)
  local function keep (_, errs)
    for _, e in ipairs(errs or {}) do host.errors[#host.errors + 1] = e end
  end
  -- Turns until done() or `seconds` pass; returns "idle" when the host has
  -- nothing to wait on (no socket, no timer) while work is left: a host
  -- would sleep for ever there.
  function host.run (done, seconds)
    local deadline = now() + (seconds or 10) * SCALE
    while not done() do
      if now() > deadline then return "timeout" end
      local list = {}
      for fd in pairs(host.fds) do list[#list + 1] = fd end
      for _, fd in ipairs(list) do keep(c:act(fd, "rw")) end
      if host.timer and now() >= host.timer then
        host.timer = nil
        keep(c:act())
      end
      if next(host.fds) == nil and host.timer == nil and not done() then return "idle" end
      aigc.sleep(0.002)
    end
    return "done"
  end
  return host
end

describe("an external event loop (watch / act)", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  it("sets a timer that fired early again: the retry's wait still ends", function ()
    local c = aigc.client { base_url = srv.base_url, max_retries = 1 }
    local host = new_host(c, { early = 0.5 })
    local res, err
    c:chat_async(params("status=503,times=1,retry-after-ms=600", {
      on_done = function (r) res = r end, on_error = function (e) err = e end }))
    assert.equal("done", host.run(function () return res or err end))
    assert.is_nil(err, err and tostring(err))
    assert.equal(1, res.retries or 1)
    assert.truthy(host.timer_calls >= 3, "the timer was set again after each early fire")
    c:close()
  end)

  it("wakes a task asleep in client:sleep: the timer counts the tasks' sleeps", function ()
    local host = new_host(client)
    local out = {}
    client:spawn(function ()
      client:sleep(0.3)
      out[#out + 1] = "slept"
      local res = assert(client:chat(params(nil, { messages = { { role = "user", content = "Echo: chat" } } })))
      out[#out + 1] = res.text
      client:sleep(0.2)
      out[#out + 1] = "end"
    end)
    local slept_timer
    assert.equal("done", host.run(function ()
      -- (the first: later ones may be the chat's attempt timeout, 600 s, a
      -- floor the loop keeps until it passes)
      if not slept_timer and type(host.last_timer) == "number" and host.last_timer > 0.1 then
        slept_timer = host.last_timer
      end
      return #out == 3
    end))
    assert.truthy(slept_timer and slept_timer <= 0.3, "the watcher heard of the sleep: " .. tostring(slept_timer))
    assert.same({ "slept", "chat", "end" }, out)
    assert.equal(0, client:active())
  end)

  it("runs what is posted to the loop (a future's cancel) from the timer", function ()
    local host = new_host(client)
    local got
    local tools = aigc.tools { { name = "noop", parameters = { type = "object" }, fn = function () return "" end } }
    local f = client:chat_async(params("delay=5000", { tools = tools, on_error = function (e) got = e end }))
    -- (until the request waits on its reply: the timer libcurl sets while it
    -- connects, 0.2 s, could be due already at the cancel on a loaded
    -- machine, and a due timer is rightly not told again: LuaJIT, once)
    assert.equal("done", host.run(function ()
      return next(host.fds) ~= nil and (host.timer == nil or host.timer > now() + 1)
    end))
    local calls = host.timer_calls
    f:cancel()
    assert.is_nil(got)   -- (from the loop, never inside cancel())
    assert.truthy(host.timer_calls > calls, "the watcher was told at once")
    assert.equal(0, host.last_timer)
    assert.equal("done", host.run(function () return got ~= nil end))
    assert.equal("canceled", got.kind)
  end)

  it("hears of a request submitted outside act(), with no kick", function ()
    local host = new_host(client)
    local res
    assert.equal("done", host.run(function () return host.timer == nil end))   -- (idle)
    local calls = host.timer_calls
    client:chat_async(params(nil, { messages = { { role = "user", content = "Echo: nokick" } },
                                    on_done = function (r) res = r end }))
    assert.truthy(host.timer_calls > calls, "the watcher was told at once")
    assert.equal(0, host.last_timer)
    assert.equal("done", host.run(function () return res ~= nil end))
    assert.equal("nokick", res.text)
  end)

  it("reports the sockets of a request started inside a watch callback", function ()
    local second, first, res2
    local host
    host = new_host(client, { on_socket = function ()
      if second == nil then
        second = client:chat_async(params("delay=300", { messages = { { role = "user", content = "Echo: inner" } },
                                                         on_done = function (r) res2 = r end }))
        client:act()
      end
    end })
    first = client:chat_async(params(nil, { messages = { { role = "user", content = "Echo: outer" } } }))
    local t0 = now()
    assert.equal("done", host.run(function () return first:status() == "done" and res2 ~= nil end))
    assert.same({}, host.problems)
    assert.equal("inner", res2.text)
    -- (not left to libcurl's connect timer, 5 s, which made act() poll everything)
    assert.truthy(now() - t0 < 4, "took " .. (now() - t0) .. " s")
    assert.is_nil(next(host.fds))
  end)

  -- (coverage: client:sockets() on a client with a transfer, and watch()
  -- begun with sockets open, were never run)
  it("begun while a transfer is open, hears its sockets at once and drives it to its end", function ()
    local res
    client:chat_async(params("delay=200", { messages = { { role = "user", content = "Echo: midway" } },
                                            on_done = function (r) res = r end }))
    local deadline = now() + 10 * SCALE
    while next(client:sockets()) == nil and now() < deadline do client:step(0.01) end
    local open = client:sockets()
    local fd, what = next(open)
    assert.truthy(fd, "no socket open")
    assert.truthy(what == "in" or what == "out" or what == "inout", what)
    local host = new_host(client)
    assert.equal(what, host.fds[fd], table.concat(host.log, " "))
    assert.equal("done", host.run(function () return res ~= nil end))
    assert.equal("midway", res.text)
    assert.same({}, host.problems)
  end)

  for _, where in ipairs { "main", "callback" } do
    it("close() (from the " .. where .. ") removes every socket and the timer; act() then does nothing", function ()
      local host = new_host(client)
      local reqs, started, closed = {}, 0, false
      for i = 1, 3 do
        reqs[i] = client:chat_async(params("pause=300", { stream = function (d)
          if d then started = started + 1 end
          if where == "callback" and started >= 3 and not closed then
            closed = true
            client:close()
          end
        end, on_error = function () end }))
      end
      assert.equal("done", host.run(function () return closed or (where == "main" and started >= 3) end))
      assert.truthy(host.watched and host.watched >= 3)   -- (the streams were watched)
      if where == "main" then client:close() end
      assert.same({}, host.problems)
      assert.is_nil(next(host.fds), "sockets left watched after close")
      assert.equal("nil", host.last_timer)
      assert.is_nil(host.timer)
      for _, r in ipairs(reqs) do assert.equal("canceled", r:status()) end
      -- a host may still hold events for it: nothing happens
      assert.equal(0, client:act())
      assert.equal(0, client:act(3, "r"))
      assert.has_error(function () client:act("x") end)   -- (misuse still raises)
    end)
  end

  it("returns the callback errors from act(), as step() does", function ()
    local host = new_host(client)
    local req = client:chat_async(params(nil, { on_done = function () error("on_done boom") end }))
    assert.equal("done", host.run(function () return req:status() == "done" and #host.errors > 0 end))
    assert.equal(1, #host.errors)
    assert.truthy(tostring(host.errors[1]):find("on_done boom", 1, true), tostring(host.errors[1]))
    local _, errs = client:step()
    assert.is_nil(errs)   -- (returned once)
  end)

  it("never tells the watcher to watch a socket already closed (refused connections, retries)", function ()
    local uv = require "luv"
    local port, release = proc.closed_port()   -- a port nobody listens on
    finally(release)
    local bad = {}
    -- ("localhost": the connection starts when libcurl's resolver is done,
    -- and libcurl sees it refused and closes it within that same act())
    local c = aigc.client { base_url = "http://localhost:" .. port .. "/v1", max_retries = 2 }
    local host = new_host(c, { on_socket = function (fd, what)
      if what ~= "remove" and not uv.fs_fstat(fd) then bad[#bad + 1] = fd .. ":" .. what end
    end })
    local ends = 0
    for _ = 1, 4 do c:chat_async(params(nil, { on_error = function () ends = ends + 1 end })) end
    assert.equal("done", host.run(function () return ends == 4 end, 20))
    assert.same({}, bad)
    assert.same({}, host.problems)
    assert.is_nil(next(host.fds))
    c:close()
  end)

  it("comes back for transfers max_bytes_per_step held (their sockets are not watched meanwhile)", function ()
    local c = aigc.client { base_url = srv.base_url, max_retries = 0, max_bytes_per_step = 1 }
    local host = new_host(c)
    local words = {}
    for i = 1, 300 do words[i] = "word" .. i end
    local text, ended, results = table.concat(words, " "), 0, {}
    for i = 1, 3 do
      c:chat_async { messages = { { role = "user", content = "Echo: " .. text } }, stream = function () end,
                     on_done = function (r) results[i] = r.text; ended = ended + 1 end,
                     on_error = function (e) results[i] = tostring(e); ended = ended + 1 end }
    end
    assert.equal("done", host.run(function () return ended == 3 end, 60))
    for i = 1, 3 do assert.equal(text, results[i]) end
    assert.same({}, host.errors)
    c:close()
  end)
end)
