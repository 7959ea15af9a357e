-- Waiting for a call from inside its own request's callback is misuse,
-- raised with the message alone or at the caller's line -- never at a line
-- of aigc's own modules. A media or download future waited for inside its
-- request's chunk or stream callback raised it located in aigc's loop
-- (`.../aigc/client_loop.lua:376: cannot wait ...`): the core's pump,
-- which only that loop calls, named its caller's line. The call itself
-- still ends as it would have.
local devserver = require "devserver"

local HERE = debug.getinfo(1, "S").short_src
local MSG = "cannot wait for a request from inside its own callback"

describe("a wait inside its own request's callback", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  -- f(cb) starts a call whose callback is cb; cb waits for it (once):
  -- returns that wait's error and the call's own result.
  local function inside (start)
    local call, got
    call = start(function ()
      if got == nil then got = { pcall(function () return call:wait() end) } end
    end)
    local res, err = call:wait()
    return got, res, err
  end

  it("download_async's chunk sink: the message alone, the download whole", function ()
    local got, res, err = inside(function (cb)
      return client:download_async(srv.base_url .. "/models", { to = cb })
    end)
    assert.same({ false, MSG }, got)
    assert.is_nil(err)
    assert.truthy(res.bytes > 0)
  end)

  it("images_generate_async's stream callback: the message alone, the images there", function ()
    local got, res, err = inside(function (cb)
      return client:images_generate_async { prompt = "x", size = "16x16", response_format = "b64_json",
                                            stream = cb }
    end)
    assert.same({ false, MSG }, got)
    assert.is_nil(err)
    assert.truthy(#res.data > 0)
  end)

  it("req:wait() called by the user: at the user's line", function ()
    local req, got
    local line = debug.getinfo(1, "l").currentline + 2
    req = client:chat_async { messages = { { role = "user", content = "hi" } }, stream = function ()
      if got == nil then got = { pcall(function () local r, e = req:wait(); return r, e end) } end
    end }
    assert.truthy(req:wait())
    assert.same({ false, HERE .. ":" .. line .. ": " .. MSG }, got)
  end)
end)
