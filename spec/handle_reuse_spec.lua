-- One client's requests share libcurl easy handles (the engine keeps those
-- of ended requests for the next ones): nothing of one request may leak
-- into the next (its method, its body, its total timeout), whatever way
-- the earlier one ended.
local aigc = require "aigc"
local devserver = require "devserver"

local HI = { { role = "user", content = "Echo: reused" } }

describe("reused transfers", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  it("a GET after a POST is a GET with no body, and a POST after it has its body", function ()
    assert(client:chat { messages = HI })
    assert(client:models())
    local get = srv:last()
    assert.equal("GET", get.method)
    assert.equal("", get.body)
    assert.equal("reused", assert(client:chat { messages = HI }).text)
    local post = srv:last()
    assert.equal("POST", post.method)
    assert.equal("Echo: reused", post.body_json.messages[1].content)
  end)

  -- (the engine sets a reused handle's URL, headers, method and limits only
  -- when they differ from what that handle was last given: issue 17)
  it("a call's URL, headers and method do not stay on the handle for the next", function ()
    assert(client:chat { messages = HI, headers = { ["X-Once"] = "1" } })
    assert.equal("1", srv:last().headers["x-once"])
    assert(client:chat { messages = HI })
    local plain = srv:last()
    assert.is_nil(plain.headers["x-once"])
    assert.equal("/v1/chat/completions", plain.path)
    local _, err = client:files_delete("file-none")   -- a DELETE (the server knows no such file)
    assert.is_table(err)
    assert.equal("DELETE", srv:last().method)
    assert.equal("/v1/files/file-none", srv:last().path)
    assert(client:chat { messages = HI, timeout = 5 })
    local post = srv:last()
    assert.equal("POST", post.method)
    assert.equal("/v1/chat/completions", post.path)
    assert.equal("Echo: reused", post.body_json.messages[1].content)
    assert(client:models())
    assert.equal("GET", srv:last().method)
    assert.equal("/v1/models", srv:last().path)
  end)

  it("a stream after a call with a short total timeout is not cut by that timeout", function ()
    -- (both scaled under valgrind, where a step is slower)
    local scale = tonumber(os.getenv("AIGC_TIMEOUT_SCALE")) or 1
    local limit = 0.25 * scale
    assert(client:chat { messages = HI, timeout = limit })
    local deltas = 0
    local t0 = aigc.now()
    local res, err = client:chat {   -- (8 tokens 60 ms apart: about 0.5 s in all)
      messages = { { role = "user", content = "Echo: one two three four five six seven eight" } },
      headers = { ["x-aigc-fault"] = "pause=" .. math.floor(60 * scale) },
      timeout = limit,   -- for a stream: the idle limit between bytes, never a total
      stream = function () deltas = deltas + 1 end,
    }
    assert.is_nil(err)
    assert.equal("one two three four five six seven eight", res.text)
    assert.is_true(aigc.now() - t0 > limit, "the stream should outlast the earlier total timeout")
    assert.is_true(deltas > 4)
  end)

  it("a call after a stream has a total timeout again", function ()
    assert(client:chat { messages = HI, stream = function () end })
    local res, err = client:chat { messages = HI, timeout = 0.3,
                                   headers = { ["x-aigc-fault"] = "delay=1500" } }
    assert.is_nil(res)
    assert.equal("timeout", err.kind)
  end)

  -- On Linux the engine keeps sockets in an epoll set and leaves a
  -- keep-alive socket registered between requests: a closed socket's
  -- number taken by a new one must be watched again, and a parked socket
  -- that turns readable must not be handed to libcurl.
  it("watches new sockets that reuse the numbers of closed ones", function ()
    local other = aigc.client { base_url = srv.base_url, max_retries = 0, timeout = 5 }
    finally(function () other:close() end)   -- (`local other <close>` where 5.4 only ran it)
    for i = 1, 30 do
      -- A new connection each time (the server closes it after answering).
      local res = assert(client:chat { messages = { { role = "user", content = "Echo: c" .. i } },
                                       headers = { Connection = "close" }, timeout = 5 })
      assert.equal("c" .. i, res.text)
      assert.equal("k" .. i, assert(other:chat("Echo: k" .. i)).text)
      if i % 10 == 0 then
        local reqs = {}
        for j = 1, 16 do
          reqs[j] = client:chat_async { messages = { { role = "user", content = "Echo: a" .. j } },
                                        headers = j % 2 == 0 and { Connection = "close" } or nil, timeout = 5 }
        end
        for j, req in ipairs(reqs) do assert.equal("a" .. j, assert(req:wait()).text) end
      end
    end
  end)

  it("a pooled connection that turns readable between requests does not disturb the next", function ()
    assert(client:chat { messages = HI, headers = { ["x-aigc-fault"] = "long-body" } })
    for _ = 1, 5 do client:step(0.02) end   -- the parked socket is readable: junk after the body
    local res = assert(client:chat { messages = HI, timeout = 5 })
    assert.equal("reused", res.text)
  end)

  it("requests after a cancel, a failure and a limit abort all succeed", function ()
    local req = client:chat_async { messages = HI, headers = { ["x-aigc-fault"] = "delay=2000" } }
    client:step(0.05)
    req:cancel()
    local _, err = client:chat { messages = HI, headers = { ["x-aigc-fault"] = "status=400" } }
    assert.equal("http", err.kind)
    _, err = client:chat { messages = HI, max_response_bytes = 10 }
    assert.equal("limit", err.kind)
    for i = 1, 40 do
      local res = assert(client:chat { messages = { { role = "user", content = "Echo: n" .. i } } })
      assert.equal("n" .. i, res.text)
    end
  end)
end)
