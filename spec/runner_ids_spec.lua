-- aigc.runner: case ids that are 64-bit integers (a database's, a
-- snowflake's) past 2^53. Where Lua has integers (5.3, 5.4) each is its own
-- case: keyed with "%.17g", 1789456123456789012 and ...013 were one id, so a
-- dataset of both was refused as "two cases have the id 1.789...e+18", and
-- on resume one was skipped as done because the other was (a row lost).
-- Where Lua has no integers (5.1, LuaJIT) such an id cannot be kept exact:
-- refused at its line, asking for a string, never one case skipped.

local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"
local runner = require "aigc.runner"

local HAS_INTEGERS = rawget(math, "type") ~= nil
local A, B = "1789456123456789012", "1789456123456789013"

local write = cli.write

describe("aigc.runner with 64-bit integer case ids", function ()
  local srv, client, dir
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  it("runs two ids that differ past 2^53 as two cases, and resumes each by its own id", function ()
    local cases, out = dir .. "/cases.jsonl", dir .. "/results.jsonl"
    write(cases, '{"id": ' .. A .. ', "prompt": "a"}\n{"id": ' .. B .. ', "prompt": "b"}\n')
    if not HAS_INTEGERS then
      local none, err = runner.run { client = client, cases = cases, out = out }
      assert.is_nil(none)
      assert.matches("cases.jsonl:1: .*beyond 2%^53.*send it as a string", err.message)
      return
    end
    -- a dataset of B alone, A done in the results file: B is not done
    local only_b = dir .. "/b.jsonl"
    write(only_b, '{"id": ' .. B .. ', "prompt": "b"}\n')
    write(out, '{"id": ' .. A .. ', "ok": true, "text": "earlier"}\n')
    local s = assert(runner.run { client = client, cases = only_b, out = out })
    assert.equal(1, #srv:requests())
    assert.equal(0, s.skipped)
    srv:reset()
    -- A done before: only B runs
    write(out, '{"id": ' .. A .. ', "ok": true, "text": "earlier"}\n')
    local err
    s, err = runner.run { client = client, cases = cases, out = out }
    assert.is_nil(err)
    assert.equal(1, #srv:requests())
    assert.equal(1, s.skipped)
    assert.equal(2, s.ok)
    local text = proc.read_file(out)
    assert.truthy(text:find('"id":' .. B, 1, true))
    -- both done now: a rerun sends nothing
    srv:reset()
    s = assert(runner.run { client = client, cases = cases, out = out })
    assert.equal(0, #srv:requests())
    assert.equal(2, s.skipped)
    -- a list of cases alike (summary.results holds each)
    srv:reset()
    s = assert(runner.run { client = client, cases = { { id = math.tointeger(A), prompt = "a" },
                                                       { id = math.tointeger(B), prompt = "b" } } })
    assert.equal(2, #srv:requests())
    assert.equal(2, s.ok)
    assert.truthy(s.results[A] and s.results[B])
  end)
end)
