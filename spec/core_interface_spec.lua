-- The C core's side of issue 11's interfaces with the Lua layer, through
-- aigc.core alone (no aigc.client): the one list of per-call options (never
-- sent), the one misuse format located at the caller, empty tables at the
-- fields the API defines as arrays, the scheduler hook that makes
-- req:wait() yield inside a task, req:_notify with several waiters, and no
-- C method table left for Lua to patch.
local core = require "aigc.core"
local cjson = require "cjson"
local devserver = require "devserver"

local HERE = "spec/core_interface_spec%.lua:%d+: "

describe("the C core's interfaces", function ()
  local srv, engine
  devserver.engine_fixture(_ENV, function (s, e) srv, engine = s, e end)

  local function ask (extra) return devserver.params(nil, extra, "m") end

  local function sent () return cjson.decode(srv:last().body) end

  describe("per-call options", function ()
    it("core.call_options is the one list, each with who reads it", function ()
      assert.same({
        timeout = "engine", connect_timeout = "engine", deadline = "engine", max_retries = "engine",
        max_response_bytes = "engine", max_json_values = "engine", max_json_containers = "engine",
        on_done = "engine", on_error = "engine", on_stream_end = "engine", priority = "engine",
        headers = "client", extra_headers = "client", query = "client", extra_query = "client",
        idempotency_key = "client", extra_body = "encoder",
        schema = "dialogue", schema_name = "dialogue", schema_mode = "dialogue", schema_strict = "dialogue",
        max_tool_rounds = "dialogue", tool_errors = "dialogue",
      }, core.call_options)
    end)

    it("none of them is sent, whatever its value; unknown fields are", function ()
      local p = ask { temperature = 0.5, my_field = "x" }
      local function quiet () end   -- (print would put the result's address in the test log)
      for name in pairs(core.call_options) do
        if p[name] == nil then p[name] = ({ on_done = quiet, on_error = quiet, on_stream_end = quiet,
          timeout = 5, deadline = 9,
          connect_timeout = 5, max_retries = 1, max_response_bytes = 1000000, max_json_values = 100000,
          max_json_containers = 10000, priority = "background", extra_body = {} })[name] or { "anything" } end
      end
      assert(engine:submit("chat", p):wait())
      local body = sent()
      assert.is_not_nil(next(core.call_options))   -- (else the loops check nothing)
      for name in pairs(core.call_options) do assert.is_nil(body[name], name) end
      assert.equal(0.5, body.temperature)
      assert.equal("x", body.my_field)
    end)

    -- (util.c looks a key up through a filter of each option's length and
    -- first and last bytes: keys alike in all three are looked up, the rest
    -- answered by the filter alone)
    it("a key that only looks like one is sent: same length and ends, one byte more or less", function ()
      local p, want = ask {}, {}
      local function add (k) if core.call_options[k] == nil and k ~= "model" and k ~= "messages" then
        p[k], want[k] = #k, #k end end
      for name in pairs(core.call_options) do
        add(name:sub(1, 1) .. ("Z"):rep(#name - 2) .. name:sub(-1))   -- the filter's bit, not the name
        add(name:sub(1, 1) .. name:sub(2, -2):upper() .. name:sub(-1))
        add(name .. "x"); add(name:sub(1, -2)); add(name:sub(2)); add("_" .. name)
        add(name:rep(2))   -- past the filter's 32 bytes: the table alone
      end
      for _, k in ipairs { "stream_optionz", "s", "t", "o", ("x"):rep(31), ("x"):rep(32), ("x"):rep(33),
                           "\0timeout", "timeout\0" } do add(k) end
      p.logprobs, want.logprobs = true, true   -- (a usual key in the filter's bit of an option)
      assert(engine:submit("chat", p):wait())
      local body, n = sent(), 0
      for k, v in pairs(want) do assert.equal(v, body[k], k); n = n + 1 end
      assert.is_true(n > 6 * 23, n .. " keys")
    end)
  end)

  describe("misuse", function ()
    local function raises (pattern, fn)
      local ok, e = pcall(fn)
      assert.is_false(ok)
      assert.matches("^" .. HERE .. pattern, e)
    end

    it("one format, bad argument #N to 'FN' (params.X: ...), at the caller's line", function ()
      local opts = { fname = "chat", arg = 1 }
      raises("bad argument #1 to 'chat' %(params%.timeout: a number of seconds > 0 expected, got %-1%)$",
        function () return engine:submit("chat", ask { timeout = -1 }, opts) end)
      raises("bad argument #1 to 'chat' %(params%.deadline: a number of seconds > 0 expected, got string%)$",
        function () return engine:submit("chat", ask { deadline = "soon" }, opts) end)
      raises("bad argument #1 to 'chat' %(params%.max_retries: an integer in 0%.%.100 expected%)$",
        function () return engine:submit("chat", ask { max_retries = 1.5 }, opts) end)
      raises("bad argument #1 to 'chat' %(params%.on_done: a function expected, got number%)$",
        function () return engine:submit("chat", ask { on_done = 5 }, opts) end)
      raises("bad argument #1 to 'chat' %(params%.stream: a boolean or a function expected, got number%)$",
        function () return engine:submit("chat", ask { stream = 5 }, opts) end)
      raises("bad argument #1 to 'chat' %(params%.messages%[1%]%.content: cannot encode a function%)$",
        function () return engine:submit("chat", { messages = { { role = "user", content = print } } }, opts) end)
      -- without opts: the engine's own method, params being its argument #2
      raises("bad argument #2 to 'submit' %(params%.timeout: a number of seconds > 0 expected, got 0%)$",
        function () return engine:submit("chat", ask { timeout = 0 }) end)
      raises("bad argument #1 to 'encode' %(value%.x: cannot encode a function%)$",
        function () return core.json.encode { x = print } end)
      raises("bad argument #1 to 'engine' %(config%.timeout: a number of seconds > 0 expected, got %-1%)$",
        function () return core.engine { base_url = "http://x", timeout = -1 } end)
      raises("bad argument #1 to 'engine' %(config%.timeout: a number of seconds > 0 and at most 1e9 expected, "
             .. "got 1e%+300%)$",
        function () return core.engine { base_url = "http://x", timeout = 1e300 } end)
    end)

    it("nothing is sent for a call refused", function ()
      local before = srv:stats().requests_total
      -- (refused, and the engine driven: a call accepted is only sent by a step,
      -- so without them the count could not change whatever submit did)
      assert.is_false(pcall(engine.submit, engine, "chat", ask { timeout = -1 }))
      for _ = 1, 20 do if engine:step(0.05) == 0 then break end end
      assert.equal(before, srv:stats().requests_total)
    end)
  end)

  describe("empty tables at the API's array fields", function ()
    it("encode as [] (elsewhere an empty table stays {})", function ()
      local p = ask { stop = {}, tools = {}, metadata = {},
        messages = { { role = "user", content = {} }, { role = "assistant", content = "x", tool_calls = {} } },
        response_format = { type = "json_schema", json_schema = { name = "s",
          schema = { type = "object", properties = {}, required = {}, anyOf = { { enum = {} } } } } } }
      engine:submit("chat", p):wait()
      local body = srv:last().body
      assert.matches('"stop":%[%]', body)
      assert.matches('"tools":%[%]', body)
      assert.matches('"metadata":{}', body)
      assert.matches('"content":%[%]', body)
      assert.matches('"tool_calls":%[%]', body)
      assert.matches('"properties":{}', body)
      assert.matches('"required":%[%]', body)
      assert.matches('"enum":%[%]', body)
      -- aigc.json.encode knows no API: {} there
      assert.equal('{"stop":{}}', core.json.encode { stop = {} })
    end)

    it("a property named like a schema keyword ('required', 'enum') keeps its {} schema", function ()
      -- (it went out as "required":[], a schema the server refuses)
      local schema = { type = "object",
        properties = { required = {}, enum = {}, examples = {},
                       properties = { type = "object", properties = {}, required = {} } },
        required = {}, items = { required = {} }, ["$defs"] = { anyOf = {} }, default = { enum = {} } }
      engine:submit("chat", ask { response_format = { type = "json_schema",
        json_schema = { name = "s", schema = schema } } }):wait()
      local body = srv:last().body
      local function count (text) return select(2, body:gsub(text:gsub("%p", "%%%0"), "")) end
      -- the properties named required, enum, examples: {} (key order is the table's)
      assert.equal(1, count '"required":{}')
      assert.equal(1, count '"examples":{}')
      assert.equal(2, count '"enum":{}')                  -- (and the default's value, data)
      -- the keywords themselves are lists: the root's, the nested object's, items'
      assert.equal(3, count '"required":[]')
      assert.equal(1, count '"items":{"required":[]}')
      -- a $defs entry named anyOf is a schema ({}); a default's value is data ({})
      assert.equal(1, count '"$defs":{"anyOf":{}}')
      assert.equal(1, count '"default":{"enum":{}}')
    end)
  end)

  describe("the scheduler hook", function ()
    local function scheduler ()
      local s = { tasks = setmetatable({}, { __mode = "k" }), token = {}, resumed = {} }
      s.resume = function (co, req)
        s.resumed[#s.resumed + 1] = co
        local ok, e = coroutine.resume(co, req:result())
        if not ok then error(e, 0) end
      end
      engine:set_scheduler(s)
      return s
    end

    local function task (s, fn)
      local co = coroutine.create(fn)
      s.tasks[co] = true
      return co
    end

    -- (a callback's error is kept for step()'s second result: none may go unseen)
    local function drive ()
      repeat
        local n, errs = engine:step(0.01)
        assert.same({}, errs or {})
      until n == 0
    end

    it("set_scheduler checks its argument", function ()
      assert.has_error(function () engine:set_scheduler {} end)
      assert.has_error(function () engine:set_scheduler { tasks = {} } end)
      assert.has_no_error(function () engine:set_scheduler(nil) end)
    end)

    it("wait() in a task yields the token and the request; resume gives wait() its results", function ()
      local s = scheduler()
      local got
      local co = task(s, function () got = { engine:submit("chat", ask()):wait() } end)
      local ok, token, req = coroutine.resume(co)
      assert.is_true(ok)
      assert.equal(s.token, token)
      assert.equal("userdata", type(req))
      assert.equal("suspended", coroutine.status(co))
      drive()
      assert.equal("dead", coroutine.status(co))
      assert.same({ co }, s.resumed)
      assert.equal("table", type(got[1]))
      assert.equal("assistant", got[1].choices[1].message.role)
    end)

    it("every task waiting on one request is resumed once, in order; a canceled one with its error", function ()
      local s = scheduler()
      local req = engine:submit("chat", ask())
      local results = {}
      local a = task(s, function () results.a = { req:wait() } end)
      local b = task(s, function () results.b = { req:wait() } end)
      coroutine.resume(a)
      coroutine.resume(b)
      req:cancel()
      drive()
      assert.same({ a, b }, s.resumed)
      assert.is_nil(results.a[1])
      assert.equal("canceled", results.a[2].kind)
      assert.equal(results.a[2], results.b[2])
    end)

    it("wait(timeout), a coroutine that is not a task, and no scheduler all block", function ()
      local s = scheduler()
      local co = task(s, function () return engine:submit("chat", ask()):wait(30) end)
      local ok, res = coroutine.resume(co)
      assert.is_true(ok)
      assert.equal("table", type(res))
      local other = coroutine.create(function () return engine:submit("chat", ask()):wait() end)
      ok, res = coroutine.resume(other)
      assert.is_true(ok)
      assert.equal("table", type(res))
      engine:set_scheduler(nil)
      co = task(s, function () return engine:submit("chat", ask()):wait() end)
      ok, res = coroutine.resume(co)
      assert.is_true(ok)
      assert.equal("table", type(res))
      assert.same({}, s.resumed)
    end)

    it("an error raised by resume is a callback error, reported once", function ()
      local co = coroutine.create(function () return engine:submit("chat", ask()):wait() end)
      engine:set_scheduler { tasks = { [co] = true }, token = 1,
                             resume = function () error("scheduler broke") end }
      coroutine.resume(co)
      local errors = {}
      while true do
        local n, errs = engine:step(0.01)
        for _, e in ipairs(errs or {}) do errors[#errors + 1] = e end
        if n == 0 then break end
      end
      assert.equal(1, #errors)
      assert.matches("scheduler broke", tostring(errors[1]))
    end)

    it("req:_notify takes several functions, each called once after on_done", function ()
      local order = {}
      local req = engine:submit("chat", ask { on_done = function () order[#order + 1] = "on_done" end })
      local given   -- (an assertion failing inside the function is only kept for step(): checked after)
      req:_notify(function (r) order[#order + 1] = "first"; given = r end)
      req:_notify(function () order[#order + 1] = "second" end)
      drive()
      assert.same({ "on_done", "first", "second" }, order)
      assert.equal(req, given)
      req:_notify(function () order[#order + 1] = "late" end)   -- over already: the next turn
      engine:step(0)
      assert.same({ "on_done", "first", "second", "late" }, order)
    end)
  end)

  it("core.file_kind tells a regular file from a directory, a device or a pipe without opening it", function ()
    local path = os.tmpname()
    assert.equal("file", core.file_kind(path))
    os.remove(path)
    local none, msg = core.file_kind(path)
    assert.is_nil(none)
    assert.matches("No such file", msg)
    assert.equal("directory", core.file_kind("/"))
    assert.equal("char", core.file_kind("/dev/null"))
    os.execute("mkfifo " .. path)
    assert.equal("fifo", core.file_kind(path))   -- (opening it would wait for a writer)
    os.remove(path)
    assert.has_error(function () core.file_kind() end)
  end)

  it("core.lockfile: one holder at a time (one process too), the file gone at close, no lock after a kill", function ()
    local proc = require "procutil"
    local socket = require "socket"
    local path = os.tmpname() .. ".lock"
    local lock = assert(core.lockfile(path))
    assert.equal(tostring(proc.read_file("/proc/self/stat")):match("^%d+") .. "\n", proc.read_file(path))
    local none, msg, code = core.lockfile(path)            -- the same process: refused too
    assert.is_nil(none)
    assert.equal(path .. " is locked", msg)
    assert.equal("locked", code)
    lock:close()
    lock:close()                                           -- (idempotent)
    assert.is_nil(io.open(path))                           -- removed at close
    do local _ = assert(core.lockfile(path)) end          -- dropped:
    collectgarbage(); collectgarbage()                     -- __gc releases it
    local again = assert(core.lockfile(path))
    again:close()
    -- a holder killed with SIGKILL leaves the file, never the lock; its pid names it while it lives
    local child = assert(io.popen(proc.lua_command() .. " -e " .. proc.quote(
      "local l = require('aigc.core').lockfile('" .. path .. "'); io.write('held\\n'); io.flush(); "
      .. "require('aigc.core').sleep(30)") .. " & echo $!", "r"))
    local a, b = child:read("*l"), child:read("*l")      -- (the shell's echo and the child's line, in any order)
    local pid = tonumber(a) or tonumber(b)
    finally(function () if pid then os.execute("kill -9 " .. pid .. " 2>/dev/null") end end)   -- (else 30 s on)
    assert.equal("held", tonumber(a) and b or a)
    local _, _, code2, holder = core.lockfile(path)
    assert.equal("locked", code2)
    assert.equal(pid, holder)
    os.execute("kill -9 " .. pid)
    while proc.alive(pid) do socket.sleep(0.01) end
    child:close()
    assert.is_not_nil(io.open(path))
    local after = assert(core.lockfile(path))
    after:close()
    assert.has_error(function () core.lockfile("") end)
    local bad, why = core.lockfile("/nonexistent-aigc-dir/x.lock")
    assert.is_nil(bad)
    assert.matches("No such file", why)
  end)

  it("one rule for headers: core.header_problem, and the core applies it to every line", function ()
    assert.is_nil(core.header_problem("X-Good_name.1~", "any value: with colons"))
    assert.matches("invalid name", core.header_problem("X(Y)", "v"))
    assert.matches("invalid name", core.header_problem("X Y", "v"))
    assert.matches("empty name", core.header_problem("", "v"))
    assert.matches("header injection", core.header_problem("X", "a\r\nEvil: 1"))
    assert.matches("header injection", core.header_problem("X", "a\0b"))
    assert.has_error(function () core.engine { base_url = "http://x", headers = { "X(Y): v" } } end,
                     "header 'X(Y)' has an invalid name (a token: letters, digits and !#$%&'*+-.^_`|~)")
    assert.has_error(function () core.engine { base_url = "http://x", headers = { "no colon" } } end,
                     "invalid header line (expected 'Name: value')")
    local req
    assert.has_error(function ()
      req = engine:submit("chat", ask(), { headers = { "X: a\nEvil: 1" } })
    end, "header 'X' contains CR, LF or NUL (refused: header injection)")
    assert.is_nil(req)
  end)

  it("no C method table is left for Lua to patch; wait is C", function ()
    assert.is_nil(core.request_methods)
    local req = engine:submit("chat", ask())
    assert.equal("C", debug.getinfo(req.wait, "S").what)
    req:wait()
  end)
end)
