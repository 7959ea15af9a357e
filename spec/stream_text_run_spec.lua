-- The plain chat stream's chunks delivered in runs (src/textrun.c, issue
-- 17: the chunks the scanner merges call a text-only callback under one
-- pcall for the run, not one each) against the generic loop (a callback
-- that also takes the chunk, one pcall per chunk): where a run could end
-- differently — the callback raising (a string, a table), at any chunk
-- and under a step budget; closing or canceling or stepping its client
-- from inside — the deltas seen and the outcome are the same.
local aigc = require "aigc"
local devserver = require "devserver"

local USER = { { role = "user", content = "Generate a short story about a robot that learns to paint." } }

-- The callback's part of a traceback: its frames down to the first
-- unnamed C one. (Below it a run adds one such frame, the run's function,
-- between the callback and the loop: the one difference a user may see.)
local function callback_frames (tb)
  local t = {}
  for line in tostring(tb):gmatch("[^\n]+") do
    if line:find("[C]: in ?", 1, true) then break end
    t[#t + 1] = line
  end
  return t
end

describe("the plain chat stream's runs", function ()
  local srv

  devserver.fixture(_ENV, function (s) srv = s end, { model = "aigc-dev" })

  -- Runs one stream on a fresh client with a callback taking (delta) or
  -- (delta, chunk); `act(n, delta, client, req)` runs inside it at each
  -- delta. `budget`: driven by client:step(0.05, budget). Returns the
  -- deltas seen (nil as false), the result and error, the client's status.
  local function run (takes_chunk, act, budget, fault)
    local client = aigc.client { base_url = srv.base_url, max_retries = 0, model = "aigc-dev" }
    local seen, req = {}, nil
    local function note (d)
      seen[#seen + 1] = d == nil and false or d
      if act then act(#seen, d, client, req) end
    end
    local params = { messages = USER }
    if fault then params.headers = { ["x-aigc-fault"] = fault } end
    -- (both on one line: their frames in a traceback read the same)
    params.stream = takes_chunk and function (d, c) assert(c); note(d) end or function (d) note(d) end
    req = client:chat_async(params)
    local steps = 0
    while req:status() == "running" or req:status() == "queued" do
      local before = #seen
      client:step(0.05, budget)
      -- (a budget bounds the callbacks of one step: a run counts its own)
      if budget and budget > 0 then assert(#seen - before <= budget, "more callbacks than the budget") end
      steps = steps + 1
      assert(steps < 10000, "the request never ended")
    end
    local res, err = req:result()
    local open, active = pcall(client.active, client)   -- (a callback may have closed it)
    while open and active > 0 and steps < 10000 do
      client:step(0)
      active, steps = client:active(), steps + 1
    end
    client:close()
    return seen, res, err, req:status()
  end

  local function same_outcome (a, b)
    assert.same(a[1], b[1])   -- the deltas
    assert.equal(a[4], b[4])  -- the status
    if a[2] then
      assert.equal(a[2].choices[1].message.content, b[2].choices[1].message.content)
      assert.equal(a[2].choices[1].finish_reason, b[2].choices[1].finish_reason)
    else
      assert.equal(a[3].kind, b[3].kind)
      assert.same(a[3].message, b[3].message)
      assert.same(a[3].partial and a[3].partial.text, b[3].partial and b[3].partial.text)
      assert.same(callback_frames(a[3].traceback), callback_frames(b[3].traceback))
    end
  end

  local function both (act, budget, fault)
    local slow = { run(true, act, budget, fault) }
    local fast = { run(false, act, budget, fault) }
    same_outcome(slow, fast)
    return fast
  end

  for _, at in ipairs { 1, 2, 5, 17 } do
    for _, budget in ipairs { 0, 1, 3 } do
      it("stops where the callback raises (delta " .. at .. ", budget " .. budget .. ")", function ()
        local fast = both(function (n) if n == at then error("boom at " .. n) end end, budget)
        assert.equal(at, #fast[1])
        assert.equal("callback", fast[3].kind)
        assert.matches("boom at " .. at, fast[3].message)
        assert.truthy(fast[3].traceback:find("stream_text_run_spec", 1, true))
      end)
    end
  end

  it("fails with the table a callback raised, as the generic loop does", function ()
    local raised = { code = 7 }   -- (one table: its tostring is the message on both paths)
    local fast = both(function (n) if n == 4 then error(raised) end end)
    assert.equal(4, #fast[1])
    assert.equal("callback", fast[3].kind)
  end)

  it("fails at the last delta before the finish chunk, as the generic loop does", function ()
    local total = #run(false)
    local fast = both(function (n) if n == total then error("last") end end, 2)
    assert.equal(total, #fast[1])
    assert.equal("callback", fast[3].kind)
  end)

  it("stops at a close from inside the callback, with nothing after it", function ()
    local fast = both(function (n, _, client) if n == 3 then client:close() end end)
    assert.equal(3, #fast[1])
    assert.equal("canceled", fast[4])
  end)

  it("stops at a cancel from inside the callback under a budget, then an error raised after it", function ()
    local fast = both(function (n, _, _, req)
      if n == 6 then req:cancel(); error("after the cancel") end
    end, 2)
    assert.equal(6, #fast[1])
    assert.equal("canceled", fast[4])
  end)

  it("gives the same deltas to a callback that drives its client (waits for another request)", function ()
    local others = {}
    local fast = both(function (n, _, client)
      if n % 4 == 1 then
        local res = client:chat_async({ messages = { { role = "user", content = "hi " .. n } } }):wait()
        others[#others + 1] = res and res.choices[1].message.content or "failed"
      end
    end)
    assert.truthy(#fast[1] > 5)
    assert.equal("done", fast[4])
    assert.truthy(#others > 2)
    for _, text in ipairs(others) do assert.not_equal("failed", text) end
  end)

  it("gives the same deltas when the stream also holds chunks the scanner declines", function ()
    for _, fault in ipairs { "dup-key", "malformed-chunk", "multiline" } do
      both(function (n) if n == 9 then error("nine") end end, 3, fault)
      both(nil, 1, fault)
    end
  end)
end)
