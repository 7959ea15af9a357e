-- Lua-version parity: the same program (spec/support/parity_probe.lua: JSON
-- edge cases, chat, streams, async, tools, structured output, conversations,
-- embeddings and vectors, errors and their tostring, usage) against the same
-- bundled server under Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT gives the same
-- results, except where README "What differs between the Lua versions" says
-- it does: each such case is listed below with its row, and must differ (a
-- row that no longer holds is stale).
--
-- The interpreters run as child processes, each with the module built for
-- it (make LUA_VERSION=5.1|5.2|5.3|jit); a missing build or interpreter is
-- pending, saying so. Under `make test` the comparison runs once, in the
-- suite busted-5.4 (it runs every interpreter itself); the README rows the
-- probe does not reach are asserted below under each Lua.
local aigc = require "aigc"
local devserver = require "devserver"
local proc = require "procutil"
local portable = require "portable"

local INTERPRETERS = {
  { v = "5.4", lua = "lua5.4", cpath = "./?.so", so = "aigc/core.so" },
  { v = "5.3", lua = "lua5.3", cpath = "build/5.3/?.so", so = "build/5.3/aigc/core.so" },
  { v = "5.2", lua = "lua5.2", cpath = "build/5.2/?.so", so = "build/5.2/aigc/core.so" },
  { v = "5.1", lua = "lua5.1", cpath = "build/5.1/?.so", so = "build/5.1/aigc/core.so" },
  { v = "jit", lua = "luajit", cpath = "build/jit/?.so", so = "build/jit/aigc/core.so" },
}

-- The probe's cases whose results differ where numbers are doubles, and the
-- README row that says so.
local NUMBER_ROWS = {
  -- "integers ...: doubles: exact up to ±2^53", "a reply's integer beyond
  -- ±2^53: the nearest double" (then re-encoded as that double, or refused
  -- past 2^53 as the next row says), "a whole float (2.0) in what you send:
  -- 2 (... -0.0 as 0; 1e300 ... refused)":
  "json.decode#1 ", "json.decode#2 ", "json.decode#3 ", "json.decode#4 ", "json.decode#5 ",
  "json.decode#6 ", "json.decode#7 ", "json.decode#8 ", "json.decode#11 ", "json.decode#12 ",
  "json.decode#13 ", "json.decode#17 ", "json.decode#19 ", "json.decode#20 ", "json.decode#21 ",
  "json.decode#51 ", "json.decode#52 ", "json.decode#53 ", "json.decode#54 ", "json.decode#55 ",
  "json.decode#56 ", "json.decode#57 ", "json.decode#58 ", "json.decode#67 ", "json.decode#71 ",
  "json.decode#72 ", "json.decode#73 ", "json.decode#74 ", "json.decode#75 ", "json.decode#76 ",
  "json.decode#77 ",
  "json.encode -0", "json.encode 2^53", "json.encode 2^53 literal + 1", "json.encode 2^53+1 computed",
  "json.encode 1e300", "json.encode 2.0", "json.encode -2^63", "json.encode 2^63", "json.encode 2^31",
  "json round trip big", "send seed 2^53+1", "send float 2.0", "send 1e300", "send -0", "send 2^63",
  "send -2^63", "send max int", "conversation load numbers",
  -- "sending an integer-valued number beyond ±2^53: raises": a tool whose
  -- result holds a reply's 1e300 or -2^63 gets that error back as its result.
  "tools#1", "tools#3",
  -- what those sent and got back (token counts, requests refused before sending)
  "usage",
}
-- "pairs(res) ... headers": no __pairs on 5.1 and LuaJIT.
local PAIRS_ROW = { "res pairs" }
-- LuaJIT's misuse messages of C functions called in tail position.
local JIT_NAMES = { "json.decode nil", "json.encode no arg", "vec nan", "vec k", "vec k 0" }

local function set_of (...)
  local s = {}
  for _, list in ipairs { ... } do
    for _, name in ipairs(list) do s[name] = true end
  end
  return s
end

local function lines_of (text)
  local by_name, order = {}, {}
  for line in text:gmatch("[^\n]+") do
    local name, value = line:match("^([^\t]*)\t(.*)$")
    if name then
      assert(by_name[name] == nil, "the probe has two cases named " .. name)
      by_name[name] = value
      order[#order + 1] = name
    end
  end
  return by_name, order
end

local function why_not_here ()
  local suite = os.getenv("AIGC_SUITE_NAME")            -- (set by scripts/run-tests.sh)
  -- (5.4's busted run is cut in parts: busted-part1-5.4 ...; this file is in one of them)
  if suite and suite ~= "" and not suite:match("^busted%-part%d+%-5%.4$") then
    return "the parity probe runs every interpreter itself, once, in a part of the suite busted-5.4"
  end
  return nil
end

describe("Lua-version parity: one program, one server, every Lua", function ()
  local reason = why_not_here()
  if reason then
    it("runs in busted-5.4", function () pending(reason) end)
    return
  end

  local srv
  local outputs = {}
  local missing = {}

  -- The shell words that run spec/support/NAME under `it_`'s Lua with its build.
  local function child (it_, name)
    local root = proc.root()
    local setup_code = ("package.path = %q .. package.path; package.cpath = %q .. package.cpath")
      :format(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;", root .. "/" .. it_.cpath:gsub("^%./", "") .. ";")
    return it_.lua .. " -e " .. proc.quote(setup_code) .. " " .. proc.quote(root .. "/spec/support/" .. name)
  end

  setup(function ()
    srv = devserver.start { pause_ms = 0 }
    local root = proc.root()
    for _, it_ in ipairs(INTERPRETERS) do
      if not proc.execute("command -v " .. it_.lua .. " >/dev/null 2>&1") then
        missing[it_.v] = it_.lua .. " is not installed"
      elseif not proc.exists(root .. "/" .. it_.so) then
        missing[it_.v] = "no build for it: make LUA_VERSION=" .. it_.v
      else
        local ok, out = proc.sh(child(it_, "parity_probe.lua") .. " " .. proc.quote(srv.base_url) .. " 7 2>&1")
        assert(ok and out:find("\nEND\n$"), it_.lua .. ": the probe failed:\n" .. out:sub(-2000))
        outputs[it_.v] = out
      end
    end
  end)

  teardown(function ()
    if srv then srv:stop() end
  end)

  -- Compares b's cases with a's: the names that differ, and a report.
  local function differ (va, vb)
    local a, order = lines_of(outputs[va])
    local b = lines_of(outputs[vb])
    local names, report = {}, {}
    for _, name in ipairs(order) do
      if a[name] ~= b[name] then
        names[name] = true
        report[#report + 1] = ("%s\n  %s: %s\n  %s: %s"):format(name, va, tostring(a[name]):sub(1, 300),
                                                               vb, tostring(b[name]):sub(1, 300))
      end
    end
    assert.equal(#order, #(select(2, lines_of(outputs[vb]))), "not the same cases")
    return names, report
  end

  local function need (...)
    for _, v in ipairs { ... } do
      if not outputs[v] then pending("Lua " .. v .. ": " .. tostring(missing[v])); return false end
    end
    return true
  end

  -- A decode case is named by its number (its text follows).
  local function short (name) return name:match("^json%.decode#%d+ ") or name end

  -- Every case that differs is one of `allowed`, and every one of
  -- `required` differs (a documented difference that holds no more).
  local function check (va, vb, allowed, required)
    local names, report = differ(va, vb)
    local unexplained = {}
    for _, line in ipairs(report) do
      local name = line:match("^[^\n]*")
      if not allowed[short(name)] then unexplained[#unexplained + 1] = line end
    end
    assert(#unexplained == 0, ("%d undocumented differences between Lua %s and Lua %s:\n%s")
      :format(#unexplained, va, vb, table.concat(unexplained, "\n")))
    local got = {}
    for name in pairs(names) do got[short(name)] = true end
    for name in pairs(required) do
      assert(got[name], ("Lua %s and %s agree on %q, which the README says differs"):format(va, vb, name))
    end
  end

  it("gives the same results on Lua 5.3 as on 5.4", function ()
    if not need("5.4", "5.3") then return end
    check("5.4", "5.3", {}, {})
  end)

  for _, v in ipairs { "5.2", "5.1", "jit" } do
    it("gives the same results on " .. v .. " as on 5.4, but for the README's rows on numbers"
       .. (v ~= "5.2" and " and pairs" or ""), function ()
      if not need("5.4", v) then return end
      local allowed = set_of(NUMBER_ROWS, v ~= "5.2" and PAIRS_ROW or {}, v == "jit" and JIT_NAMES or {})
      check("5.4", v, allowed, set_of(NUMBER_ROWS, v ~= "5.2" and PAIRS_ROW or {}))
    end)
  end

  it("gives the same results on every Lua whose numbers are doubles (5.1, 5.2, LuaJIT)", function ()
    if not need("5.2", "5.1", "jit") then return end
    check("5.2", "5.1", set_of(PAIRS_ROW), set_of(PAIRS_ROW))
    check("5.1", "jit", set_of(JIT_NAMES), {})
  end)

  it("a cassette and a disk cache made under one Lua replay and hit the same under every Lua", function ()
    if not need("5.4") then return end
    local tape, dir = os.tmpname(), os.tmpname()
    os.remove(tape); os.remove(dir)
    assert(proc.execute("mkdir -p " .. proc.quote(dir)))
    local function run (it_, mode)
      local ok, out = proc.sh(child(it_, "parity_tape.lua") .. " " .. mode .. " " .. proc.quote(tape) .. " "
                              .. proc.quote(dir) .. " " .. proc.quote(srv.base_url) .. " 2>&1")
      assert(ok and out:find("\nEND\n$"), it_.lua .. ": the tape probe failed:\n" .. out:sub(-2000))
      return out
    end
    local recorded = lines_of(run(INTERPRETERS[1], "record"))
    local ran = 0
    for _, it_ in ipairs(INTERPRETERS) do
      if outputs[it_.v] then
        local replayed, order = lines_of(run(it_, "replay"))
        for _, name in ipairs(order) do
          if name:find("^cache#") then
            -- the calls that can be cached (temperature 0 or a seed) are hits
            if name ~= "cache#2" then assert.matches("^true | ", replayed[name], nil, false, it_.v .. " " .. name) end
          else
            assert.equal(recorded[name], replayed[name], it_.v .. " " .. name)
          end
        end
        ran = ran + 1
      end
    end
    proc.execute("rm -rf " .. proc.quote(dir)); os.remove(tape)
    assert.is_true(ran >= 1)
  end)

  it("the documented number differences are the README's: a whole float as an integer, -0.0 as 0", function ()
    if not need("5.4", "5.2") then return end
    local a, b = lines_of(outputs["5.4"]), lines_of(outputs["5.2"])
    assert.equal('"{\\34model\\34:\\34aigc-dev\\34,\\34temperature\\34:2.0}"', a["send float 2.0"])
    assert.equal('"{\\34model\\34:\\34aigc-dev\\34,\\34temperature\\34:2}"', b["send float 2.0"])
    assert.equal('"{\\34model\\34:\\34aigc-dev\\34,\\34x_zero\\34:-0.0}"', a["send -0"])
    assert.equal('"{\\34model\\34:\\34aigc-dev\\34,\\34x_zero\\34:0}"', b["send -0"])
    assert.matches("beyond 2^53", b["send 1e300"], 1, true)
    assert.matches("x_big\\34:1e+300", a["send 1e300"], 1, true)
  end)
end)

-- README rows the probe cannot compare (what a Lua's own functions do with
-- aigc's values), asserted under each Lua.
describe("README rows on the Lua versions", function ()
  local v = portable.version

  it("assert(client:chat{...}) of a failed call: the error on 5.3, 5.4, LuaJIT; 5.1 and 5.2's assert refuses a table",
     function ()
    -- In a child Lua: busted's own `assert` is luassert's, not the base library's.
    local code = [[
      local aigc = require "aigc"
      local c = aigc.client { base_url = "http://127.0.0.1:1/v1", max_retries = 0, api_key = "sk-parity-secret-key" }
      local ok, e = pcall(function () return assert(c:chat "Hi") end)
      print(ok, aigc.is_error(e), tostring(e))
      -- The form that works on every Lua:
      local res, err = c:chat "Hi"
      print(pcall(function () if not res then error(tostring(err), 0) end end))
    ]]
    local ok, out = proc.sh(proc.lua_command() .. " -e " .. proc.quote(code))
    assert(ok, out)
    local first, second = out:match("^([^\n]*)\n([^\n]*)\n$")
    assert(first, out)
    if v == "5.1" or v == "5.2" then
      assert.matches("^false\tfalse\t.*bad argument #2 to 'assert' %(string expected, got table%)$", first)
    else
      assert.matches("^false\ttrue\taigc: connect error: ", first)
    end
    assert.matches("^false\taigc: connect error: ", second)
    assert.is_nil(out:find("sk-parity-secret-key", 1, true))
  end)

  it("pairs(res) lists headers on 5.2+; on 5.1 and LuaJIT (no __pairs) only reading res.headers makes it", function ()
    local srv = devserver.start { pause_ms = 0 }
    local c = aigc.client { base_url = srv.base_url, max_retries = 0 }
    local res = c:chat "Hello"
    assert.is_table(res)
    local seen = false
    for k in pairs(res) do if k == "headers" then seen = true end end
    c:close(); srv:stop()
    assert.equal(v ~= "5.1" and v ~= "jit", seen)
    assert.is_string(res.headers["x-request-id"])
    assert.matches('"headers":', aigc.json.encode(res), 1, true)
  end)

  it("tostring of a decoded array: its mark's __name on 5.3+, 'table' before", function ()
    local named = v == "5.3" or v == "5.4"
    for _, t in ipairs { aigc.array {}, aigc.json.decode("[1, 2]") } do
      assert.matches(named and "^aigc%.array: " or "^table: ", tostring(t))
    end
    assert.matches("^table: ", tostring(aigc.json.decode("{}")))
  end)

  it("-0.0 is sent as -0.0 where numbers have an integer subtype, else as 0 (a whole float goes as one)", function ()
    local out = aigc.json.encode { x = -0.0 }
    assert.equal(portable.has_integers and '{"x":-0.0}' or '{"x":0}', out)
  end)
end)

-- Found by the parity probe: its usage() counts differed between runs (and
-- so between Luas, whose collectors run at different moments).
describe("usage of a chat_async request canceled, then dropped", function ()
  -- README, Usage and cost: a chat_async request without callbacks "is
  -- counted at the end of the step() in which it ended, else when the client
  -- next looks (its next call, usage(), close())". One canceled and dropped
  -- before the client looked went uncounted when a collection came first.
  local function canceled_then_collected (end_it)
    local c = aigc.client { base_url = "http://127.0.0.1:1/v1", max_retries = 0 }
    local req = c:chat_async { messages = { { role = "user", content = "Hi" } } }
    end_it(req)
    req = nil   -- luacheck: ignore (dropped)
    collectgarbage("collect"); collectgarbage("collect")
    local u = c:usage()
    c:close()
    return u
  end

  it("req:cancel() is counted, even when the collector frees the request first", function ()
    local u = canceled_then_collected(function (req) req:cancel() end)
    assert.equal(1, u.requests)
    assert.equal(1, u.errors)
    assert.same({ canceled = 1 }, u.errors_by_kind)
  end)

  it("so is the request's __close (a `<close>` variable on 5.4)", function ()
    local u = canceled_then_collected(function (req) getmetatable(req).__close(req) end)
    assert.equal(1, u.errors)
    assert.same({ canceled = 1 }, u.errors_by_kind)
  end)

  it("a request dropped without a cancel is canceled by the collector and not counted (README)", function ()
    local u = canceled_then_collected(function () end)
    assert.equal(0, u.errors)
  end)
end)

-- Found by the parity probe: Lua 5.3+'s string.format("%d") refuses a
-- number with a fraction, where 5.1, 5.2 and LuaJIT truncate it.
describe("tostring of a conversation whose estimate gives fractions", function ()
  it("is the same line on every Lua (README: `estimate` returns a number >= 0)", function ()
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1" }
    local conv = aigc.conversation { client = c, system = "You are Sam, the innkeeper.",
                                     estimate = function (text) return #text / 3.7 end }
    local ok, line = pcall(tostring, conv)
    c:close()
    assert.is_true(ok, line)
    assert.equal("aigc.conversation (1 messages, ~11 tokens)", line)   -- (27 bytes / 3.7 + 4)
  end)
end)

-- Found by the parity probe: with several bad fields, which one a misuse
-- message names follows pairs() (README, Errors: two channels).
describe("a misuse with several bad fields", function ()
  it("names one of them, whichever the table's order gives first", function ()
    local ok, e = pcall(aigc.client, { zeta_opt = 1, alpha_opt = 2, mid_opt = 3 })
    assert.is_false(ok)
    local named = tostring(e):match("opts%.(%a+_opt): unknown option")
    assert.is_truthy(({ zeta_opt = true, alpha_opt = true, mid_opt = true })[named], tostring(e))
    ok, e = pcall(aigc.json.encode, { a = print, b = 0 / 0 })
    assert.is_false(ok)
    assert.is_truthy(tostring(e):find("value.a: cannot encode a function", 1, true)
                     or tostring(e):find("value.b: cannot encode NaN", 1, true), tostring(e))
  end)
end)

-- Found by the parity probe: a budget past C's int raised Lua 5.3+'s own
-- "number has no integer representation" there, and on 5.1, 5.2 and LuaJIT
-- "budget must be an integer >= 0" (a double cast to an integer it does not fit).
describe("client:step(0, budget) with a budget beyond what can run", function ()
  it("runs them all on every Lua, as a budget of 2^31 - 1 does", function ()
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1" }
    for _, budget in ipairs { 2 ^ 31, 2 ^ 53, 2 ^ 63, 1e300 } do
      local ok, n = pcall(c.step, c, 0, budget)
      assert.is_true(ok, tostring(n))
      assert.equal(0, n)
    end
    local ok, e = pcall(c.step, c, 0, math.huge)
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'step' (an integer >= 0 expected, got inf)", tostring(e), 1, true)
    c:close()
  end)
end)
