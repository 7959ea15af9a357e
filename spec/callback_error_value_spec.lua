-- A callback that raises a value that is not a string (a game's
-- error({ reason = "npc_left" }), an object with __tostring, a userdata):
-- the error of kind "callback" keeps that value as err.value, and its
-- message is the value's text, never an address ("table: 0x55a9...") and
-- never a new error. Before the fix the message was tostring()'s
-- "table: 0x..." and the value was lost.
local aigc = require "aigc"
local devserver = require "devserver"

warn("@on")

local function no_address (s)
  assert.is_string(s)
  assert.is_nil(s:find("0x", 1, true), s)
end

describe("a callback's error that is not a string", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })

  it("a task's error keeps it too (the Lua layer's callback errors)", function ()
    local errors = {}
    local c = aigc.client { base_url = srv.base_url, error_handler = function (e) errors[#errors + 1] = e end }
    local reason = { reason = "npc_left" }
    c:spawn(function ()
      assert(c:chat "Hi")
      error(reason)
    end)
    c:spawn(function () error(io.stdout) end)
    local deadline = os.time() + 30
    while #errors < 2 and os.time() < deadline do c:step(0.05) end
    c:close()
    assert.equal(2, #errors)
    table.sort(errors, function (a, b) return type(a.value) < type(b.value) end)
    assert.equal("callback", errors[1].kind)
    assert.equal(reason, errors[1].value)
    assert.matches("a table error value without a message", errors[1].message, 1, true)
    assert.equal(io.stdout, errors[2].value)
    assert.matches("a userdata error value without a message", errors[2].message, 1, true)
    for _, e in ipairs(errors) do
      no_address(e.message)
      no_address(e.traceback)
    end
  end)

  it("a tool raising an open file sends the model no address", function ()
    local ts = aigc.tools {
      { name = "raises_file", fn = function () error(io.stdout) end },
      { name = "raises_named", fn = function ()
          error(setmetatable({}, { __tostring = function () return "the spell fizzled" end })) end },
    }
    local asked = { { role = "user", content = "raises_file and raises_named" } }
    local res = assert(client:chat { tools = ts, messages = asked })
    local sent = srv:requests()[#srv:requests()].body_json.messages
    assert.equal('{"error":"a userdata error value without a message"}', sent[3].content)
    assert.equal('{"error":"the spell fizzled"}', sent[4].content)
    assert.equal(io.stdout, res.tool_calls_made[1].error_value)
  end)
end)
