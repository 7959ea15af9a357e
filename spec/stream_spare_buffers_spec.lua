-- A client keeps the event buffers of its ended streams (at most two, of at
-- most 64 KiB each) for its next streams, so that a stream whose server
-- sends everything at once does not regrow its queue from 64 bytes by
-- realloc in every request (issue 17, per chunk). Reuse must never mix one
-- stream's events into another's: every sequence below checks each
-- stream's text against what the server was asked to echo, byte for byte.
--   * streams one after another, large (the queue grows past 64 KiB: not
--     kept) and small (kept and reused), alternating;
--   * several in flight at once on one client, ending in every order;
--   * a stream started and run to its end from inside another stream's
--     callback (that stream's buffer is being read: it is pinned, and the
--     nested one takes only spares);
--   * a stream canceled mid-way, then a new one; a closed client (its
--     spares freed) with a stream still being delivered.
-- It keeps the JSON arena block of an ended reply too (one block, of at most
-- 64 KiB) for its next reply's parse: no malloc and free of 4 KiB for every
-- reply (issue 17, per request). Each reply's text is checked the same way:
--   * replies one after another, small (the block kept and reused), mid-sized
--     (a chain of blocks: the newest kept) and large (past 64 KiB: freed);
--   * several in flight at once, delivered in one step;
--   * calls made and run to their end inside another's on_done (that reply
--     is being delivered: its memory is pinned);
--   * a client closed inside a reply's on_done (its spare freed while a reply
--     is delivered), and replies on the next client.
-- And the header store's buffer of an ended request (in the spare buffers):
--   * streams and replies alternating, each with its own headers.
-- (Under ASan, a block freed twice or kept past the client's close shows.)

local aigc = require "aigc"
local devserver = require "devserver"

-- An echo of `n` words: the devserver streams a chunk per word.
local function words (n, tag)
  local t = {}
  for i = 1, n do t[i] = tag .. i end
  return table.concat(t, " ")
end

local function ask (text) return { { role = "user", content = "Echo: " .. text } } end

describe("a client's spare stream buffers", function ()
  local srv, client
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () if srv then srv:stop() end end)
  before_each(function () client = aigc.client { base_url = srv.base_url, model = "aigc-dev" } end)
  after_each(function () client:close() end)

  local function stream_text (text)
    local got = {}
    local res = client:chat { messages = ask(text), stream = function (d) got[#got + 1] = d end }
    return table.concat(got), res
  end

  it("keep every stream's text its own, large and small streams alternating", function ()
    for round = 1, 4 do
      local big, small = words(2500, "b" .. round .. "-"), words(20, "s" .. round .. "-")
      local got_big, res_big = stream_text(big)
      assert.are.equal(#big, #got_big)
      assert.are.equal(big, got_big)
      assert.are.equal(big, res_big.choices[1].message.content)
      for _ = 1, 3 do
        local got_small = stream_text(small)
        assert.are.equal(small, got_small)
      end
    end
  end)

  it("keep streams in flight at once apart, whichever ends first", function ()
    for round = 1, 3 do
      local texts, got, reqs = {}, {}, {}
      for i = 1, 6 do
        texts[i] = words(i % 2 == 0 and 400 or 15, ("r%d.%d-"):format(round, i))
        got[i] = {}
        reqs[i] = client:chat_async { messages = ask(texts[i]),
                                      stream = function (d) got[i][#got[i] + 1] = d end }
      end
      -- each step delivers at most a few events per request: the streams interleave
      local deadline = aigc.now() + 20
      while client:active() > 0 and aigc.now() < deadline do client:step(0.01, 3) end
      for i = 1, 6 do
        assert.are.equal("done", reqs[i]:status())
        assert.are.equal(texts[i], table.concat(got[i]))
      end
    end
  end)

  it("give a stream started inside another's callback only spare buffers", function ()
    local outer, inner = words(300, "o-"), words(120, "i-")
    stream_text(words(50, "warm-"))   -- leaves spares behind
    local got_outer, inner_texts, n = {}, {}, 0
    client:chat { messages = ask(outer), stream = function (d)
      got_outer[#got_outer + 1] = d
      n = n + 1
      if n % 100 == 1 then   -- a whole stream, run to its end from here
        inner_texts[#inner_texts + 1] = stream_text(inner)
      end
    end }
    assert.are.equal(outer, table.concat(got_outer))
    assert.is_true(#inner_texts >= 3, #inner_texts .. " inner streams")
    for _, t in ipairs(inner_texts) do assert.are.equal(inner, t) end
  end)

  it("survive a canceled stream, then serve the next one whole", function ()
    for round = 1, 3 do
      local seen = 0
      local req
      req = client:chat_async { messages = ask(words(800, "c" .. round .. "-")),
                                stream = function () seen = seen + 1; if seen == 10 then req:cancel() end end }
      local deadline = aigc.now() + 10
      while client:active() > 0 and aigc.now() < deadline do client:step(0.01) end
      assert.are.equal("canceled", req:status())
      local text = words(200, "after" .. round .. "-")
      assert.are.equal(text, (stream_text(text)))
    end
  end)

  it("free the spares with the client, even while one of its streams is being delivered", function ()
    stream_text(words(100, "warm-"))   -- leaves spares behind
    local got = {}
    local req = client:chat_async { messages = ask(words(300, "x-")),
      stream = function (d)
        got[#got + 1] = d
        if #got == 5 then client:close() end   -- frees the spares; this stream's buffer is pinned
      end,
      on_error = function () end }
    local deadline = aigc.now() + 10
    while req:status() == "running" and aigc.now() < deadline do pcall(client.step, client, 0.01) end
    assert.are.equal(5, #got)
    assert.are_not.equal("running", req:status())
    -- a closed client says so, and a new one streams whole
    local ok = pcall(client.chat, client, { messages = ask("late"), stream = function () end })
    assert.is_false(ok)
    client = aigc.client { base_url = srv.base_url, model = "aigc-dev" }   -- (after_each closes it)
    local text = words(300, "y-")
    assert.are.equal(text, (stream_text(text)))
  end)

  describe("and its spare reply arena", function ()
    local function echo (text)
      local res, err = client:chat { messages = ask(text) }
      assert.is_nil(err)
      return res
    end

    it("keeps every reply's values its own, small, mid-sized and large replies in every order", function ()
      local sizes = { 5, 800, 5, 12000, 30, 5, 2000, 12000, 12000, 3, 400 }
      for round, n in ipairs(sizes) do
        local text = words(n, ("r%d-"):format(round))
        local res = echo(text)
        assert.are.equal(#text, #res.text)
        assert.are.equal(text, res.text)
        assert.are.equal(text, res.choices[1].message.content)
        assert.are.equal("assistant", res.choices[1].message.role)
        assert.are.equal(1, #res.choices)
      end
    end)

    it("keeps each reply's headers its own (their stores are kept too), streams and replies alternating", function ()
      local seen = {}
      for round = 1, 6 do
        local text = words(round * 40, ("h%d-"):format(round))
        local res = round % 2 == 0 and echo(text) or select(2, stream_text(text))
        assert.are.equal(text, res.choices[1].message.content)
        local id = res.headers["x-request-id"]
        assert.is_string(id)
        assert.are.equal(res.request_id, id)
        assert.is_nil(seen[id], id)
        seen[id] = true
        assert.are.equal(round % 2 == 0 and "application/json" or "text/event-stream",
                         res.headers["content-type"]:match("^[^;]+"))
        assert.are.equal("aigc-devserver", res.headers.server)
      end
    end)

    it("keeps replies in flight at once apart", function ()
      for round = 1, 3 do
        local texts, reqs = {}, {}
        for i = 1, 6 do
          texts[i] = words(i % 3 == 0 and 1500 or 10 * i, ("f%d.%d-"):format(round, i))
          reqs[i] = client:chat_async { messages = ask(texts[i]) }
        end
        for i = 1, 6 do
          local res, err = reqs[i]:wait(20)
          assert.is_nil(err)
          assert.are.equal(texts[i], res.text)
        end
      end
    end)

    it("gives a call made inside another's on_done a block of its own", function ()
      echo("warm")   -- leaves a spare behind
      local outer, inner = words(600, "o-"), words(40, "i-")
      local got_inner, got_outer = {}, nil
      local req = client:chat_async { messages = ask(outer), on_done = function (res)
        for k = 1, 3 do got_inner[k] = echo(inner .. k).text end
        got_outer = res.choices[1].message.content
      end }
      local _, err = req:wait(20)
      assert.is_nil(err)
      assert.are.equal(outer, got_outer)
      for k = 1, 3 do assert.are.equal(inner .. k, got_inner[k]) end
      assert.are.equal(words(7, "after-"), echo(words(7, "after-")).text)
    end)

    it("is freed with the client, even while one of its replies is being delivered", function ()
      echo("warm")   -- leaves a spare behind
      local texts, got = { words(20, "a-"), words(900, "b-") }, {}
      local reqs = {}
      for i = 1, 2 do
        reqs[i] = client:chat_async { messages = ask(texts[i]), on_done = function (res)
          got[i] = res.text
          client:close()   -- frees the spare; this reply's memory is pinned
        end, on_error = function () end }
      end
      local deadline = aigc.now() + 20
      while (reqs[1]:status() == "running" or reqs[2]:status() == "running") and aigc.now() < deadline do
        pcall(client.step, client, 0.01)
      end
      local n = 0
      for i = 1, 2 do
        assert.are_not.equal("running", reqs[i]:status())
        if got[i] ~= nil then n = n + 1; assert.are.equal(texts[i], got[i]) end
      end
      assert.is_true(n >= 1)   -- (the first end closed the client: the other is canceled, or ended)
      client = aigc.client { base_url = srv.base_url, model = "aigc-dev" }   -- (after_each closes it)
      for k = 1, 3 do
        local text = words(100 * k, "y" .. k .. "-")
        assert.are.equal(text, echo(text).text)
      end
    end)
  end)
end)
