-- The public constructors outside the client -- aigc.template.new,
-- aigc.promptlog.open, aigc.ratelimit.new, aigc.usage.new -- raise misuse
-- in the API's one format, at the caller's line, also when called through
-- pcall or a tail call. They counted stack levels by hand: `pcall(template.new,
-- 5)` raised "bad argument #1 to 'new' (...)" with no file:line at all;
-- ratelimit.new { concurency = 4 } and usage.new(5) raised nothing (the
-- typo ignored, the limiter on its default; pace = "no" paced; the prices
-- broken later);
-- sentences.callback(5) was located in aigc's own sentences_calls.lua.
local template = require "aigc.template"
local promptlog = require "aigc.promptlog"
local ratelimit = require "aigc.ratelimit"
local usage = require "aigc.usage"
local sentences = require "aigc.sentences"

local HERE = debug.getinfo(1, "S").short_src
local unpack = table.unpack or rawget(_G, "unpack")

-- What `pcall(f, ...)` raised, and the line of that pcall (where the
-- misuse must be located: the caller of the constructor is this function).
local function raised (f, ...)
  local line = debug.getinfo(1, "l").currentline + 1
  local ok, e = pcall(f, ...)
  assert(not ok, "expected a misuse error")
  return tostring(e), line
end

-- A wrapper that tail-calls the constructor: it leaves no frame of its own.
local function tail (f)
  return function (...) return f(...) end
end

local CASES = {
  { template.new, { 5 }, "new", "table expected, got number" },
  { template.new, { { prompt = 5 } }, "new", "template field 'prompt' must be a string, got number" },
  { template.new, { { promt = "x" } }, "new", "unknown template field 'promt'" },
  { template.load, { true }, "load", "string expected, got boolean" },
  { template.render, { 5 }, "render", "string expected, got number" },
  { promptlog.open, { 5 }, "open", "string expected, got number" },
  { promptlog.open, { {} }, "open", "string expected, got table" },
  { ratelimit.new, { 5 }, "new", "table expected, got number" },
  { ratelimit.new, { { concurency = 4 } }, "new", "opts.concurency: unknown option (concurrency, pace, rpm, tpm, "
                                                  .. "max_wait)" },
  { ratelimit.new, { { concurrency = 0 } }, "new", "concurrency must be an integer >= 1" },
  { ratelimit.new, { { pace = "no" } }, "new", "opts.pace: boolean expected, got string" },
  { usage.new, { 5 }, "new", "prices: table ({ [model] = { input =, output = } }) expected, got number" },
  { usage.new, { { ["gpt-4o"] = { input = "x" } } }, "new", 'prices["gpt-4o"].input: a number >= 0 expected, got '
                                                             .. "string" },
  { sentences.callback, { 5 }, "callback", "function expected, got number" },
  { sentences.iter, { true }, "iter", "function expected, got boolean" },
  { sentences.stream, { {}, "x" }, "stream", "function expected, got string", 2 },
}

describe("constructors' misuse", function ()
  for _, c in ipairs(CASES) do
    local what = ("%s (%s)"):format(c[3], c[4])
    it("is raised at the caller's line through pcall: " .. what, function ()
      local e, line = raised(c[1], unpack(c[2]))
      assert.equal(("%s:%d: bad argument #%d to '%s' (%s)"):format(HERE, line, c[5] or 1, c[3], c[4]), e)
    end)
    it("is raised at the caller's line through a tail call: " .. what, function ()
      local e, line = raised(tail(c[1]), unpack(c[2]))
      assert.equal(("%s:%d: bad argument #%d to '%s' (%s)"):format(HERE, line, c[5] or 1, c[3], c[4]), e)
    end)
  end

  it("still takes what is right", function ()
    assert.equal("Hi Ada", (template.new { prompt = "Hi {{name}}" }:render { name = "Ada" }).messages[1].content)
    assert.equal(2, ratelimit.new { concurrency = 2, pace = false }.max_concurrency)
    assert.equal(0, usage.new({ ["gpt-4o"] = { input = 2.5, output = 10 } }).requests)
    assert.equal(0, usage.new().requests)
  end)

  it("a template file with a bad field is still `nil, err` naming the file, not a raise", function ()
    local path = os.tmpname()
    require("cli").write(path, '{ prompt = 5 }')
    local t, err = template.load(path)
    os.remove(path)
    assert.is_nil(t)
    assert.equal("bad template " .. path .. ": template field 'prompt' must be a string, got number", err.message)
  end)
end)
