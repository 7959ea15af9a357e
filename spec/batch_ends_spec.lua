-- A step that delivers a batch of ends reads the replies that came in while
-- the batch's callbacks ran before it starts the requests those callbacks
-- made (src/loop.c, read_before_kick: libcurl then finds their connections
-- idle). Those replies are read in one turn and delivered in the next:
-- each request still ends once, with its own reply, and nothing is left.
local aigc = require "aigc"
local devserver = require "devserver"

local params = devserver.params   -- one "Hi" message, a fault header, extra fields

local function echo (fault, word)
  return params(fault, { messages = { { role = "user", content = "Echo: " .. word } } })
end

-- Busy for `s` seconds: replies arrive meanwhile, unread.
local function busy (s)
  local t = aigc.now() + s
  while aigc.now() < t do end
end

describe("a batch of ends in one step", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)

  it("delivers every end once, those read before the kick included", function ()
    local got, errors, reqs = {}, {}, {}
    local function track (word)
      return function (res) got[word] = (got[word] or 0) + 1; assert.equal(word, res.text) end
    end
    local function on_error (err) errors[#errors + 1] = tostring(err.message) end
    -- Batch a: 32 ends at once; each callback is busy 10 ms and starts a
    -- request of its own. Batch b's replies come while they run.
    for i = 1, 32 do
      local a = echo("delay=300", "a" .. i)
      a.on_error = on_error
      a.on_done = function (res)
        track("a" .. i)(res)
        busy(0.01)
        local c = echo(nil, "c" .. i)
        c.on_done, c.on_error = track("c" .. i), on_error
        reqs[#reqs + 1] = client:chat_async(c)
      end
      reqs[#reqs + 1] = client:chat_async(a)
    end
    for i = 1, 16 do
      local b = echo("delay=420", "b" .. i)
      b.on_done, b.on_error = track("b" .. i), on_error
      reqs[#reqs + 1] = client:chat_async(b)
    end
    local deadline = aigc.now() + 20
    while client:active() > 0 do
      assert(aigc.now() < deadline, "requests still pending after 20 s")
      client:step(0.05)
    end
    assert.same({}, errors)
    for _, prefix in ipairs { "a", "b", "c" } do
      for i = 1, prefix == "b" and 16 or 32 do
        assert.equal(1, got[prefix .. i], prefix .. i)
      end
    end
    assert.equal(80, #reqs)
    for _, r in ipairs(reqs) do assert.equal("done", r:status()) end
    assert.equal(80, srv:stats().requests_total)
  end)
end)
