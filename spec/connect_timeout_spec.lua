-- The connect timeout (README, client options: `connect_timeout` 5 s per
-- attempt, as the SDKs' REFERENCE.md value), against a real listening socket
-- whose accept queue is full: the kernel then drops the client's SYN, so the
-- connection is never made and only the connect timeout can end the call
-- (the per-attempt `timeout` is 600 s). The bounds are generous: they tell
-- "the connect timeout ended it" from "something else did".
local aigc = require "aigc"
local socket = require "socket"

-- A listener that accepts nothing and whose queue is full; nil when this
-- kernel completes connections anyway (then the case cannot be made here).
local function full_listener ()
  local s = assert(socket.tcp())
  assert(s:bind("127.0.0.1", 0))
  assert(s:listen(0))
  local _, port = s:getsockname()
  local fillers, refused = {}, false
  for _ = 1, 4 do
    local c = socket.tcp()
    c:settimeout(0.3)
    local ok = c:connect("127.0.0.1", port)
    fillers[#fillers + 1] = c
    if not ok then refused = true break end
  end
  local function close ()
    for _, c in ipairs(fillers) do c:close() end
    s:close()
  end
  if not refused then close(); return nil end
  return port, close
end

local function hi () return { messages = { { role = "user", content = "Hi" } } } end

describe("connect_timeout", function ()
  it("is 5 s by default: a connection the server never completes ends as kind 'timeout'", function ()
    local port, close = full_listener()
    if not port then
      pending("this kernel completes connections to a full accept queue: no unconnectable socket here")
      return
    end
    local client = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", max_retries = 0 }
    local t0 = aigc.now()
    local res, err = client:chat(hi())
    local took = aigc.now() - t0
    client:close()
    close()
    assert.is_nil(res)
    assert.equal("timeout", err.kind)
    assert.is_true(took >= 4.5 and took < 9, ("ended after %.2f s"):format(took))
  end)

  it("takes the client's and the call's own value", function ()
    local port, close = full_listener()
    if not port then
      pending("this kernel completes connections to a full accept queue: no unconnectable socket here")
      return
    end
    local client = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", max_retries = 0,
                                 connect_timeout = 0.4 }
    local t0 = aigc.now()
    local _, err = client:chat(hi())
    local took = aigc.now() - t0
    assert.equal("timeout", err.kind)
    assert.is_true(took >= 0.3 and took < 4.5, ("ended after %.2f s"):format(took))   -- (not the default 5 s)
    -- the message names the option to raise (before: libcurl's milliseconds only)
    assert.matches("(connect_timeout: 0.4 s per attempt)", err.message, 1, true)
    local p = hi()
    p.connect_timeout = 0.8
    t0 = aigc.now()
    _, err = client:chat(p)
    took = aigc.now() - t0
    client:close()
    close()
    assert.equal("timeout", err.kind)
    assert.is_true(took >= 0.7 and took < 4.5, ("ended after %.2f s"):format(took))   -- (not the client's 0.4 s)
  end)
end)
