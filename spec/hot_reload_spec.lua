-- A game's hot reload (lurker, lume.hotswap, `package.loaded[k] = nil;
-- require(k)` for every aigc module, aigc.core included) while the first
-- copy's clients have requests in flight. Each case runs in a child (the
-- reload must not touch the modules the specs use).
--
-- On LuaJIT every reload wrapped the Lua file searcher once more (aigc's
-- wrapper that keeps its modules off the JIT): a layer of closures per
-- reload, kept for ever, each `require` of any module walking them all.

local devserver = require "devserver"
local luachild = require "luachild"

local RELOAD = [[
  local function reload ()
    for k in pairs(package.loaded) do
      if k == "aigc" or k:find("^aigc%.") then package.loaded[k] = nil end
    end
    return require "aigc"
  end
]]

describe("a hot reload of aigc", function ()
  local srv
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)

  it("wraps the Lua file searcher once, whatever the number of reloads (LuaJIT)", function ()
    local r = luachild.run(RELOAD .. [[
      if not rawget(_G, "jit") then print("no jit"); return end
      local searchers = package.loaders or package.searchers
      local before = searchers[2]
      reload()
      local first = searchers[2]
      for _ = 1, 50 do reload() end
      print(first ~= before, searchers[2] == first)
    ]])
    assert.equal(0, r.status, r.stderr)
    if r.stdout == "no jit\n" then return pending("only LuaJIT's aigc wraps the searcher") end
    assert.equal("true\ttrue\n", r.stdout)
  end)

  it("leaves both copies' clients working, mid-stream, in tasks, closed in either order", function ()
    local r = luachild.run(RELOAD .. [[
      local url = arg[1]
      local HI = { { role = "user", content = "hi there" } }
      local A = require "aigc"
      local c1 = A.client { base_url = url, max_retries = 0 }
      local seen = {}
      local function streamed (tag)
        return { messages = HI, headers = { ["x-aigc-fault"] = "pause=20" },
                 stream = function () seen[tag] = (seen[tag] or 0) + 1; collectgarbage("step") end,
                 on_done = function (res) seen[tag .. ".done"] = res.text end,
                 on_error = function (e) seen[tag .. ".error"] = e.message end }
      end
      local r1 = c1:chat_async(streamed "a")
      local task_text
      c1:spawn(function () task_text = c1:chat({ messages = HI }).text end)
      c1:step(0.01)
      local B = reload()
      assert(B ~= A and B.client ~= A.client)
      local c2 = B.client { base_url = url, max_retries = 0 }
      local r2 = c2:chat_async(streamed "b")
      local _, e1 = c1:chat { messages = HI, headers = { ["x-aigc-fault"] = "status=400" } }
      local _, e2 = c2:chat { messages = HI, headers = { ["x-aigc-fault"] = "status=400" } }
      print("errors", B.is_error(e1), A.is_error(e2), e1.kind, e2.kind)
      print("values", B.json.encode { A.array {}, A.null }, A.is_array(B.array {}), A.null == B.null)
      local t0 = A.now()
      while (r1:status() == "running" or r2:status() == "running" or not task_text) and A.now() - t0 < 20 do
        c1:step(0.01); c2:step(0.01)
      end
      print("ends", r1:status(), r2:status(), seen["a.done"] ~= nil, seen["b.done"] ~= nil,
            seen.a > 1, seen.b > 1, task_text ~= nil)
      local conv = B.conversation { client = c1 }   -- (the new code with the old copy's client)
      print("conversation", (conv:say("Echo: kept")))
      c1:close()
      A, c1, r1 = nil, nil, nil
      collectgarbage(); collectgarbage()
      print("after", c2:chat({ messages = HI, stream = function () collectgarbage() end }).text ~= nil)
      c2:close()
    ]], { args = { srv.base_url } })
    assert.equal(0, r.status, r.stderr)
    assert.equal("errors\ttrue\ttrue\thttp\thttp\n"
                 .. 'values\t[[],null]\ttrue\ttrue\n'
                 .. "ends\tdone\tdone\ttrue\ttrue\ttrue\ttrue\ttrue\n"
                 .. "conversation\tkept\n"
                 .. "after\ttrue\n", r.stdout)
  end)
end)
