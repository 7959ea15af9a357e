-- A callback raising a value that is not a string: the C core (a stream
-- callback, on_stream_end) and the Lua layer (a task, on_done, a
-- delivery: util.callback_error) worded its message differently: a
-- __tostring that raised was "(a table value whose __tostring failed)" in
-- one and "(table error value: tostring raised ...)" in the other, a
-- __tostring giving nil "...: its __tostring gave a nil, not a string",
-- and a table whose __tostring is only an address and whose __index gives
-- a message was read through __index by one, raw by the other. Now both
-- say the same of every value (src/error_report.c error_text, util.value_text).
local aigc = require "aigc"
local devserver = require "devserver"

local USER = { { role = "user", content = "Hi" } }

local function values ()
  local addressed = { __tostring = function () return "thing: 0x55d0c0ffee10" end }
  return {
    { "a plain table", {} },
    { "a table with a message", { message = "the door is locked" } },
    { "a __tostring", setmetatable({}, { __tostring = function () return "npc left" end }) },
    { "a __tostring that raises", setmetatable({}, { __tostring = function () error("no text") end }) },
    { "a __tostring that gives nil", setmetatable({}, { __tostring = function () return nil end }) },
    { "an address, a message by __index", setmetatable({}, { __tostring = addressed.__tostring,
                                                              __index = { message = "inherited" } }) },
    { "an address, a raw message", setmetatable({ message = "own" }, addressed) },
    { "an open file", io.stdout },
    { "false", false },
    { "nil", nil },
    { "a number", 42 },
  }
end

describe("a callback's error value that is not a string", function ()
  local srv
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)

  -- The message the C core makes of v, raised by a stream callback.
  local function by_core (v)
    local c = aigc.client { base_url = srv.base_url, max_retries = 0 }
    local res, err = c:chat { model = "m", messages = USER, stream = function () error(v) end }
    c:close()
    assert.is_nil(res)
    assert.equal("callback", err.kind)
    return err.message
  end

  -- The message the Lua layer makes of v, raised by a task (after its prefix).
  local function by_lua (v)
    local errors = {}
    local c = aigc.client { base_url = srv.base_url, error_handler = function (e) errors[#errors + 1] = e end }
    c:spawn(function () error(v) end)
    for _ = 1, 200 do
      if #errors > 0 then break end
      c:step(0.05)
    end
    c:close()
    assert.equal(1, #errors)
    assert.equal("callback", errors[1].kind)
    return errors[1].message:match("^error in .-: (.*)$")
  end

  for _, case in ipairs(values()) do
    it(case[1] .. ": the same words from the C core and from the Lua layer", function ()
      local core_text, lua_text = by_core(case[2]), by_lua(case[2])
      assert.is_string(core_text)
      assert.is_nil(core_text:find("0x", 1, true), core_text)
      -- (5.1, LuaJIT: error(42) is placed, "file:line: 42", a line of its own in each)
      assert.equal((core_text:gsub("^[^:]*:%d+: ", "")), (lua_text:gsub("^[^:]*:%d+: ", "")))
    end)
  end
end)
