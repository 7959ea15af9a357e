-- A client's error_handler that raises itself (error.h, aigc_error_report):
-- both errors go to stderr, the handler's and the callback's it was given,
-- and neither shows the client's key. In a child, whose stderr is read
-- (busted's own output must not show the key either).
local luachild = require "luachild"
local oneshot = require "oneshot"

local KEY = "sk-handler-SECRET-9090"

local CHILD = [[
  local aigc = require "aigc"
  local KEY, handled = arg[2], 0
  local c = aigc.client { base_url = arg[1], api_key = KEY, max_retries = 0,
    error_handler = function () handled = handled + 1; error("the handler broke on " .. KEY, 0) end }
  local r = c:chat_async { model = "m", messages = { { role = "user", content = "Hi" } },
                           on_done = function () error("on_done broke on " .. KEY, 0) end }
  while c:step() > 0 do end
  local _, kept = c:step()
  io.write(handled, " ", r:status(), " ", kept == nil and "none kept" or #kept .. " kept", "\n")
  c:close()
]]

describe("an error_handler that raises", function ()
  it("has both errors written to stderr, without the key", function ()
    local reply = oneshot.http_reply("200 OK", '{"id":"c","object":"chat.completion","model":"m",'
      .. '"choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}]}')
    local base_url = oneshot.serve_raw({ reply }, finally)
    local r = luachild.run(CHILD, { args = { base_url, KEY }, timeout = 30 })
    local clean = r.stderr:gsub(KEY:gsub("%p", "%%%0"), "<the key>")
    assert.are.equal(0, r.status, clean)
    assert.are.equal("1 done none kept\n", r.stdout)
    assert.truthy(clean:find("aigc: error in the client's error_handler: the handler broke on [redacted]", 1, true),
                  clean)
    assert.truthy(clean:find("aigc: error in a callback, given to the error_handler that failed: "
                             .. "on_done broke on [redacted]", 1, true), clean)
    assert.is_nil(clean:find("<the key>", 1, true), clean)
  end)
end)
