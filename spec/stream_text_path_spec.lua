-- The plain chat stream's delivery loop (request.c deliver_text_chunks,
-- issue 17: a callback that takes only the text, with the handler and the
-- callback pushed once per run) against the generic one (a callback that
-- also takes the chunk): the same deltas in the same order, the same
-- result or error, whatever the stream holds (chunks the scanner declines,
-- named events, error events, callbacks that fail or cancel) and however
-- many callbacks a step may run.
local devserver = require "devserver"

local USER = { { role = "user", content = "Generate a short story about a robot that learns to paint." } }
local TOOLS = {
  { type = "function", ["function"] = { name = "get_weather", description = "Weather for a city",
    parameters = { type = "object", properties = { city = { type = "string" } } } } },
}

-- What a request ended with, minus what differs between two requests.
local IGNORED = { id = true, created = true, request_id = true, headers = true, retries = true }
local function outcome (res, err)
  if not res then
    return { kind = err.kind, message = err.message, status = err.status,
             partial = err.partial and err.partial.text }
  end
  local t = {}
  for k, v in pairs(res) do
    if not IGNORED[k] then t[k] = v end
  end
  for _, choice in ipairs(t.choices or {}) do
    for _, call in ipairs(type(choice.message.tool_calls) == "table" and choice.message.tool_calls or {}) do
      if type(call) == "table" then call.id = "call_*" end
    end
  end
  return t
end

describe("the plain chat stream's delivery loop", function ()
  local client

  devserver.fixture(_ENV, function (_, c) client = c end, { model = "aigc-dev" })

  -- params for one case; `stream` is set by the caller.
  local CASES = {
    plain = function () return { messages = USER } end,
    ["n = 3"] = function () return { messages = USER, n = 3, seed = 7 } end,
    ["tool calls"] = function ()
      return { messages = { { role = "user", content = 'Use get_weather({"city":"Paris"})' } }, tools = TOOLS }
    end,
  }
  for _, f in ipairs { "content-filter", "multiline", "dup-key", "error-event", "error-data",
                       "malformed-chunk", "tool-calls=hostile", "no-finish-reason", "drop-after=5" } do
    CASES[f] = function () return { messages = USER, headers = { ["x-aigc-fault"] = f } } end
  end

  -- Runs case `name` with a callback taking (delta) or (delta, chunk); the
  -- deltas seen (nil as false) and the outcome. `budget`: driven through
  -- chat_async and client:step with at most that many callbacks a step.
  local function run (name, takes_chunk, budget, on_delta)
    local seen = {}
    local function note (d)
      seen[#seen + 1] = d == nil and false or d
      if on_delta then on_delta(#seen) end
    end
    local params = CASES[name]()
    if takes_chunk then
      params.stream = function (d, chunk) assert(type(chunk) == "table"); note(d) end
    else
      params.stream = function (d) note(d) end
    end
    if not budget then
      return seen, outcome(client:chat(params))
    end
    local req = client:chat_async(params)
    local steps = 0
    while req:status() == "running" or req:status() == "queued" do
      client:step(0.05, budget)
      steps = steps + 1
      assert(steps < 10000, "the request never ended")
    end
    return seen, outcome(req:result())
  end

  local NO_TEXT = { ["tool calls"] = true, ["tool-calls=hostile"] = true }   -- (no callback runs)
  local names = {}
  for name in pairs(CASES) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    it("gives a text-only callback what a chunk-taking one gets: " .. name, function ()
      local slow_seen, slow_out = run(name, true)
      local fast_seen, fast_out = run(name, false)
      assert.same(slow_seen, fast_seen)
      assert.same(slow_out, fast_out)
      if not NO_TEXT[name] then assert.truthy(#fast_seen > 0) end
    end)
  end

  for _, budget in ipairs { 1, 2, 3 } do
    it("gives the same deltas with at most " .. budget .. " callback(s) a step", function ()
      local all_seen, all_out = run("n = 3", false)
      local seen, out = run("n = 3", false, budget)
      assert.same(all_seen, seen)
      assert.same(all_out, out)
    end)
  end

  it("stops at a failing callback, with kind callback, on both paths", function ()
    local outs = {}
    for _, takes_chunk in ipairs { true, false } do
      local seen, out = run("plain", takes_chunk, nil, function (n) if n == 3 then error("boom at 3") end end)
      assert.equal(3, #seen)
      outs[#outs + 1] = out
    end
    assert.equal("callback", outs[2].kind)
    assert.matches("boom at 3", outs[2].message)
    assert.same(outs[1].kind, outs[2].kind)
    assert.same(outs[1].partial, outs[2].partial)
  end)

  it("delivers nothing after a cancel from inside the callback, on both paths", function ()
    for _, takes_chunk in ipairs { true, false } do
      local req, seen = nil, 0
      local params = { messages = USER }
      local function note () seen = seen + 1; if seen == 4 then req:cancel() end end
      params.stream = takes_chunk and function (_, _) note() end or function (_) note() end
      req = client:chat_async(params)
      while req:status() == "running" or req:status() == "queued" do client:step(0.05) end
      assert.equal("canceled", req:status())
      assert.equal(4, seen)
    end
  end)
end)
