-- The C core under any Lua: a smoke test of aigc.core alone (no Lua layer),
-- against the bundled server (run by lua5.4 in its own process).
--
--   lua5.1 spec/c/smoke.lua build/5.1     (the folder holding aigc/core.so)
--   luajit spec/c/smoke.lua build/jit
--   lua5.4 spec/c/smoke.lua .
--
-- Covers what differs between Lua versions in the C code (src/compat.h):
-- user values (callbacks, results, waiters), the engine and a request from
-- submit to result, error objects, collection (a pending request dropped,
-- a client collected with requests), numbers (integers exact to 2^53, the
-- behaviour beyond), and wait() yielding inside a task of the scheduler.
-- Prints one line per failed check and a last line "smoke (<Lua>): N passed,
-- M failed"; exits 1 if any failed.

local dir = assert(arg[1], "usage: LUA spec/c/smoke.lua DIR_OF_aigc/core.so")
package.cpath = dir .. "/?.so;" .. package.cpath
local core = require "aigc.core"

local version = (rawget(_G, "jit") and rawget(_G, "jit").version) or _VERSION
local passed, failed = 0, 0
local function check (what, ok, detail)
  if ok then passed = passed + 1
  else
    failed = failed + 1
    print(("FAIL %s%s"):format(what, detail ~= nil and (": " .. tostring(detail)) or ""))
  end
end

-- The bundled server, on a free port.
local port_file = os.tmpname()
os.remove(port_file)
local pid_pipe = assert(io.popen(("lua5.4 lua/aigc/devserver.lua --port 0 --port-file %s --quiet "
  .. "--exit-after 120 </dev/null >/dev/null 2>&1 & echo $!"):format(port_file)))
local pid = pid_pipe:read("*l")
pid_pipe:close()
local port
for _ = 1, 500 do
  local f = io.open(port_file)
  if f then port = tonumber((f:read("*a") or ""):match("^(%d+)\n")); f:close() end
  if port then break end
  core.sleep(0.01)
end
os.remove(port_file)
assert(port, "the bundled server did not start")
local base = "http://127.0.0.1:" .. port .. "/v1"

local function engine (extra)
  local config = { base_url = base, max_retries = 0 }
  for k, v in pairs(extra or {}) do config[k] = v end
  return core.engine(config)
end

local function ask (text, extra)
  local p = { model = "gpt-4o-mini", messages = { { role = "user", content = text } } }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

-- A request, from submit to result, with its callbacks in user values.
do
  local e = engine()
  local done, deltas = nil, {}
  -- no reference kept: held by the engine, since it has callbacks
  e:submit("chat", ask("Hello there", {
    on_done = function (res) done = res end,
    stream = function (d) deltas[#deltas + 1] = d end,
  }))
  collectgarbage(); collectgarbage()
  for _ = 1, 2000 do
    if done then break end
    e:step(0.01)
  end
  check("a stream's on_done ran", type(done) == "table", done)
  check("the stream's text", done and type(done.text) == "string" and #done.text > 0, done and done.text)
  check("deltas reached the callback", #deltas > 0 and table.concat(deltas) == (done and done.text),
        table.concat(deltas))
  check("a result's choices is an array", done and core.is_array(done.choices))
  check("step() counts nothing left", e:step(0) == 0)
  e:close()
end

-- Blocking wait, result, the error object of an HTTP error.
do
  local e = engine()
  local req = e:submit("chat", ask("Hi"))
  local res, err = req:wait()
  check("wait() returns the result", res and res.choices and res.choices[1].message.role == "assistant", err)
  check("status done", req:status() == "done")
  local bad = e:submit("json", { x = 1 }, { path = "/no/such/endpoint" })
  local r2, e2 = bad:wait()
  check("an HTTP error is nil, err", r2 == nil and type(e2) == "table")
  check("err.kind http, status 404", e2 and e2.kind == "http" and e2.status == 404, e2 and e2.kind)
  check("tostring(err)", e2 and tostring(e2):match("^aigc: http error 404") ~= nil, e2 and tostring(e2))
  check("err has the error metatable", getmetatable(e2) == core.error_mt)
  e:close()
end

-- Cancel, and a request dropped while pending (collected: canceled).
do
  local e = engine()
  local got
  local req = e:submit("chat", ask("Hi", { on_error = function (err) got = err end }))
  check("cancel() of a pending request", req:cancel() == true)
  e:step(0)
  check("on_error(canceled) from the loop", got and got.kind == "canceled", got and got.kind)
  check("cancel() again: false", req:cancel() == false)
  e:submit("chat", ask("Hi"))   -- no reference, no callback
  collectgarbage(); collectgarbage()
  check("a collected pending request is forgotten", e:active() == 0, e:active())
  e:close()
end

-- A client collected with requests pending: no crash, nothing delivered.
do
  local e = engine()
  e:submit("chat", ask("Hi", { on_done = function () error("must not run") end }))
  e = nil   -- luacheck: ignore 311 (dropped on purpose)
  collectgarbage(); collectgarbage()
  check("collected with a request pending", true)
end

-- Numbers: exact to 2^53 everywhere; beyond, exact on 5.3+, a float on
-- the Luas whose numbers are doubles, and refused when sent.
do
  local exact = math.type ~= nil and math.type(1) == "integer"
  local v = core.json.decode("[9007199254740992, -9007199254740992, 9007199254740993]")
  check("2^53 decodes exactly", v[1] == 9007199254740992 and v[2] == -9007199254740992)
  check("2^53 + 1: exact on 5.3+, the nearest double elsewhere",
        (exact and v[3] == 9007199254740993 and math.type(v[3]) == "integer")
        or (not exact and v[3] == 9007199254740992), v[3])
  local ints = core.json.encode { 128, 0, -5, 9007199254740992, -9007199254740992 }
  check("integers encode without a fraction", ints == "[128,0,-5,9007199254740992,-9007199254740992]", ints)
  check("floats keep their form", core.json.encode { 0.7, 1.5e-7, -2.25 } == "[0.7,1.5e-07,-2.25]",
        core.json.encode { 0.7, 1.5e-7, -2.25 })
  local ok, msg = pcall(core.json.encode, { seed = 2 ^ 53 + 2 })
  if exact then
    check("a float beyond 2^53 stays a float on 5.3+", ok and msg == '{"seed":9007199254740994.0}', msg)
    check("a 64-bit integer is exact on 5.3+", core.json.encode { math.maxinteger }
          == "[9223372036854775807]", core.json.encode { math.maxinteger })
  else
    check("an integer beyond 2^53 is refused with its path", not ok
          and msg:find("value.seed: the integer 9007199254740994 is beyond 2^53", 1, true) ~= nil, msg)
  end
end

-- The per-call options are never sent; misuse is reported at the caller.
do
  check("core.call_options lists timeout", core.call_options.timeout == "engine")
  local e = engine()
  local ok, msg = pcall(e.submit, e, "chat", ask("Hi", { timeout = -1 }), { fname = "chat", arg = 1 })
  check("a bad per-call option: bad argument #1 to 'chat' (params.timeout: ...)", not ok
        and msg:find("bad argument #1 to 'chat' (params.timeout: a number of seconds > 0", 1, true) ~= nil, msg)
  check("located at the caller", not ok and msg:find("smoke.lua:%d+: bad argument") ~= nil, msg)
  e:close()
end

-- wait() inside a task of the engine's scheduler yields to it.
do
  local e = engine()
  local tasks, token = setmetatable({}, { __mode = "k" }), {}
  local yielded, resumed
  e:set_scheduler { tasks = tasks, token = token, resume = function (co, req)
    resumed = true
    local ok, err = coroutine.resume(co, req:result())
    if not ok then error(err) end
  end }
  local result
  local co = coroutine.create(function ()
    local req = e:submit("chat", ask("Hi"))
    local res = req:wait()
    result = res and res.text
  end)
  tasks[co] = true
  local ok, t, r = coroutine.resume(co)
  yielded = ok and t == token and type(r) == "userdata"
  check("wait() in a task yields the token and the request", yielded, t)
  for _ = 1, 2000 do
    if result then break end
    e:step(0.01)
  end
  check("the scheduler's resume ran", resumed == true)
  check("wait() returned the result in the task", type(result) == "string", result)
  check("the task ended", coroutine.status(co) == "dead")
  e:close()
end

os.execute("kill " .. pid .. " 2>/dev/null")
print(("smoke (%s): %d passed, %d failed"):format(version, passed, failed))
if failed > 0 then os.exit(1) end   -- (else the state closes: finalizers run, ASan sees no leak)
