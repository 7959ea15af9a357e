-- A damaged or hand-edited cassette: an exchange whose fields have the
-- wrong type is an error naming its line when the client is made -- it
-- killed the replay server, so that call failed as "Empty reply from
-- server" and every later one as a refused connection.

local aigc = require "aigc"
local cassette = require "aigc.cassette"
local cli = require "cli"
local json = require("aigc.core").json

describe("a damaged cassette", function ()
  local dir
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  local GOOD = '{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
    .. '"message":{"role":"assistant","content":"fine"},"finish_reason":"stop"}]}'

  local function tape (bad)
    local path = dir .. "/t.jsonl"
    local k1 = cassette.key("chat", { messages = { { role = "user", content = "one" } } }, nil, "m")
    local k2 = cassette.key("chat", { messages = { { role = "user", content = "two" } } }, nil, "m")
    -- (a line as text: `"key": KEY` in it, for a number this Lua cannot encode)
    local line = type(bad) == "string" and bad:gsub("KEY", function () return json.encode(k2) end)
    if not line then bad.key = k2; line = json.encode(bad) end
    cli.write(path, json.encode { key = k1, status = 200, headers = {}, body = GOOD } .. "\n" .. line .. "\n")
    return path
  end

  it("an exchange of the wrong shape is an error naming its line and field", function ()
    local cases = {
      { { status = "abc", body = "{}" }, "status" },
      { { status = 99999, body = "{}" }, "status" },
      { { status = 200, body = 5 }, "body" },
      { { status = 200, events = { { t = "x", data = "data: {}\n\n" } } }, "events" },
      -- (a time beyond the server's timer killed it; one below 0 was never sent: the call timed out)
      { '{"key": KEY, "status": 200, "events": [{"t": 1e300, "data": "data: {}\\n\\n"}]}', "events" },
      { { status = 200, events = { { t = -5, data = "data: {}\n\n" } } }, "events" },
      { { status = 200, events = { 5 } }, "events" },
      { { status = 200, events = "zz" }, "events" },
      { { status = 200, headers = { x = "a\r\nb" }, body = "{}" }, "headers" },
    }
    for i, case in ipairs(cases) do
      local path = tape(case[1])
      local ok, e = pcall(aigc.client, { base_url = "http://127.0.0.1:9/v1", model = "m",
                                         cassette = { path = path, mode = "replay" } })
      assert.is_false(ok, "case " .. i)
      assert.equal("aigc.cassette: cannot read " .. path .. ":2: not a cassette exchange (its " .. case[2] .. ")",
                   e, "case " .. i)
    end
  end)

  it("a well-formed tape still replays (a status of its own, a header)", function ()
    local path = tape { status = 201, headers = { ["x-n"] = "5", ["content-type"] = "application/json" }, body = GOOD }
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "m",
                            cassette = { path = path, mode = "replay" } }
    finally(function () c:close() end)
    assert.equal("fine", assert(c:chat "one").text)
    local res = assert(c:chat "two")
    assert.equal("fine", res.text)
    assert.equal("5", res.headers["x-n"])
  end)
end)
