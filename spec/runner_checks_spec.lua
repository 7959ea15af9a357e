-- aigc.runner resuming a results file after how its cases are judged
-- changed: a case's own assertions edited, the run's `assert`, the
-- strategy (`vote`, `best_of`). The result line kept the request's digest
-- alone: the changed cases kept their old verdicts, never run again.

local cjson = require "cjson"
local cli = require "cli"
local devserver = require "devserver"
local luachild = require "luachild"
local proc = require "procutil"
local runfile = require "aigc.runfile"
local runner = require "aigc.runner"

local rows = proc.json_lines

describe("aigc.runner resuming after the judging changed", function ()
  local srv, client, dir
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  for _, results in ipairs { true, false } do
    it("judges again, without a request, the kept answers whose assertions changed (results = "
       .. tostring(results) .. ")", function ()
      local out = dir .. "/r.jsonl"
      local function run (a_value, extra)
        return assert(runner.run { client = client, out = out, results = results, assert = extra, cases = {
          { id = "a", prompt = "Echo: paris", assert = { { type = "contains", value = a_value } } },
          { id = "b", prompt = "Echo: rome" } } })
      end
      local s = run("paris")
      assert.same({ 2, 2, 0 }, { #srv:requests(), s.passed, s.skipped })
      s = run("paris")                                  -- nothing changed: nothing runs
      assert.same({ 2, 2, 2, 2 }, { #srv:requests(), s.passed, s.skipped, #rows(out) })
      s = run("london")                                 -- a's assertion edited: a judged again, and fails
      assert.same({ 2, 1, 2, 1 }, { #srv:requests(), s.passed, s.skipped, s.judged_again })
      local list = rows(out)
      assert.same({ 3, "a", false, "paris" }, { #list, list[3].id, list[3].pass, list[3].text })
      assert.same({ "london" }, { list[3].assertions[1].value })
      assert.same(list[1].usage, list[3].usage)         -- (the answer's usage, kept)
      s = run("london", { { type = "contains", value = "o" } })   -- a run's assertion added: both judged again
      assert.same({ 2, 1, 2, 2 }, { #srv:requests(), s.passed, s.skipped, s.judged_again })
      list = rows(out)
      assert.same({ 5, "b", true, "rome" }, { #list, list[5].id, list[5].pass, list[5].text })
      s = run("london", { { type = "contains", value = "o" } })   -- judged as they are now: nothing again
      assert.same({ 2, 2, 5 }, { #srv:requests(), s.skipped, #rows(out) })
      assert.is_nil(s.judged_again)
      if results then assert.equal("rome", s.results.b.text) end
    end)
  end

  for _, results in ipairs { true, false } do
    it("runs a case again when its line keeps no answer to judge (results = " .. tostring(results) .. ")", function ()
      local out = dir .. "/r.jsonl"
      local function run (v)
        return assert(runner.run { client = client, out = out, results = results, assert = { { type = "contains",
          value = v } }, cases = { { id = "a", prompt = "Echo: x" } } })
      end
      run("x")
      local line = rows(out)[1]
      line.text = nil                                       -- (a line edited by hand)
      cli.write(out, cjson.encode(line) .. "\n")
      local s = run("y")
      assert.same({ 2, 0 }, { #srv:requests(), s.skipped })
      assert.is_nil(s.judged_again)
      assert.equal("x", rows(out)[2].text)
    end)
  end

  it("runs again the cases when the strategy changed (vote's count, none)", function ()
    local out = dir .. "/r.jsonl"
    local function run (strategy)
      return assert(runner.run { client = client, out = out, results = false, strategy = strategy,
                                 cases = { { id = "a", prompt = "Echo: x" } } })
    end
    run(nil)
    assert.equal(1, #srv:requests())
    run { vote = 2 }                                     -- a strategy now: two requests
    assert.equal(3, #srv:requests())
    local s = run { vote = 2 }
    assert.same({ 3, 1 }, { #srv:requests(), s.skipped })
    run { vote = 3 }
    assert.equal(6, #srv:requests())
    run(nil)                                             -- the plain call again
    assert.equal(7, #srv:requests())
  end)

  it("a judge added since: the kept answer goes to the judge, the case's request does not go again", function ()
    local out = dir .. "/r.jsonl"
    local function run (extra)
      return assert(runner.run { client = client, out = out, results = false, assert = extra,
                                 cases = { { id = "a", prompt = "Echo: short" } } })
    end
    run(nil)
    assert.equal(1, #srv:requests())
    local s = run { { type = "judge", value = "Is it thorough?", threshold = 7 } }
    assert.same({ 2, 1, 1, 0 }, { #srv:requests(), s.judged_again, s.skipped, s.passed })
    assert.matches("Is it thorough%?", cjson.decode(srv:last().body).messages[1].content)   -- (the judge's)
    assert.equal(1, s.totals.requests)                                 -- (the judge's, counted)
    local line = proc.json_lines(out)[2]
    assert.same({ "short", false, 1 }, { line.text, line.pass, line.assertions[1].score })
  end)

  it("a results file read short keeps each line's digest, checks and place (300 distinct checks)", function ()
    local out, lines, at = dir .. "/r.jsonl", {}, {}
    local size = 0
    for i = 1, 300 do
      local line = cjson.encode { id = "c" .. i, ok = true, text = "t", pass = i % 2 == 0,
        digest = string.format("%016x", i * 7919), checks = string.format("%08xabcdef01", i) }
      if i == 300 then line = cjson.encode { id = "c300", ok = true, text = "t", pass = true } end
      if i == 299 then line = cjson.encode { id = "c299", ok = true, text = "t", digest = "0123456789abcdef" } end
      if i == 298 then line = cjson.encode { id = "c298", ok = true, text = "t", digest = "not hex", checks = "x" } end
      at[i], lines[i], size = size, line, size + #line + 1
    end
    cli.write(out, table.concat(lines, "\n") .. "\n")
    local done = assert(runfile.read_results(out, true))
    for i = 1, 297 do
      local row = runfile.done_row(done["c" .. i])
      assert.same({ ok = true, pass = i % 2 == 0, digest = string.format("%016x", i * 7919),
                    checks = string.format("%08xabcdef01", i), at = at[i] }, row)
      assert.equal("t", runfile.line_at(out, row.at, "c" .. i).text)
    end
    assert.same({ ok = true, digest = "not hex", checks = "x", at = at[298] },
                runfile.done_row(done.c298))
    assert.same({ ok = true, pass = false, digest = "0123456789abcdef" }, runfile.done_row(done.c299))
    assert.same({ ok = true, pass = true }, runfile.done_row(done.c300))
  end)

  it("takes a line with a digest and no `checks` (the previous version's) as done", function ()
    local out = dir .. "/r.jsonl"
    assert(runner.run { client = client, out = out, cases = { { id = "a", prompt = "Echo: x" } } })
    local line = rows(out)[1]
    assert.is_string(line.checks)
    line.checks = nil
    cli.write(out, cjson.encode(line) .. "\n")
    local s = assert(runner.run { client = client, out = out, assert = { { type = "contains", value = "x" } },
                                  cases = { { id = "a", prompt = "Echo: x" } } })
    assert.same({ 1, 1 }, { #srv:requests(), s.skipped })
  end)

  -- A run stopped by a results file it cannot write while judging kept
  -- answers again went on reading (and judging: a judge's request each)
  -- up to 2,048 more done lines before the stop was seen.
  for _, from in ipairs { "list", "file" } do
    it("a run stopped while judging kept answers again reads and judges no more of them (a " .. from .. ")",
       function ()
      local out, lines, cases = dir .. "/r.jsonl", {}, {}
      for i = 1, 6 do
        cases[i] = { id = "c" .. i, prompt = "Echo: paris " .. ("x"):rep(100) }
        lines[i] = cjson.encode(cases[i])
      end
      cli.write(dir .. "/cases.jsonl", table.concat(lines, "\n") .. "\n")
      assert(runner.run { client = client, out = out, cases = cases })
      assert.is_true(#cli.read(out) > 512)   -- (past `ulimit -f 1`: the next write fails)
      local wrapper = dir .. "/lua-full-disk"
      cli.write(wrapper, "#!/bin/sh\ntrap '' XFSZ\nulimit -f 1\nexec '" .. luachild.interpreter() .. "' \"$@\"\n")
      os.execute("chmod 755 '" .. wrapper .. "'")
      local r = luachild.run([[
        local aigc, runner = require "aigc", require "aigc.runner"
        local c = aigc.client { base_url = arg[1], max_retries = 0 }
        local cases = arg[3]
        if arg[4] == "list" then
          cases = {}
          for i = 1, 6 do cases[i] = { id = "c" .. i, prompt = "Echo: paris " .. ("x"):rep(100) } end
        end
        local s, err = runner.run { client = c, out = arg[2], cases = cases,
                                    assert = { { type = "judge", value = "Is it right?", threshold = 1 } } }
        print(s, type(err) == "table" and err.kind)
        c:close()
      ]], { args = { srv.base_url, out, dir .. "/cases.jsonl", from }, lua = wrapper })
      assert.equal(0, r.status, r.stderr)
      assert.equal("nil\trunner\n", r.stdout)
      assert.equal(6 + 1, #srv:requests())   -- (the first kept answer's judge; no other)
    end)
  end

  -- A kept answer judged again as the run starts writes its new line
  -- there: a results file it could not write (a full disk; here a file
  -- size limit) raised out of runner.run, where every other write failure
  -- is nil, err.
  it("a results file it cannot write while judging a kept answer again: nil, err, not a raise", function ()
    local out = dir .. "/r.jsonl"
    local cases = {}
    for i = 1, 4 do cases[i] = { id = "c" .. i, prompt = "Echo: paris " .. ("x"):rep(100) } end
    assert(runner.run { client = client, out = out, cases = cases })
    assert.is_true(#cli.read(out) > 512)   -- (past `ulimit -f 1`: the next write fails)
    local wrapper = dir .. "/lua-full-disk"   -- (a write past `ulimit -f` fails with EFBIG, as on a full disk)
    cli.write(wrapper, "#!/bin/sh\ntrap '' XFSZ\nulimit -f 1\nexec '" .. luachild.interpreter() .. "' \"$@\"\n")
    os.execute("chmod 755 '" .. wrapper .. "'")
    local r = luachild.run([[
      local aigc, runner = require "aigc", require "aigc.runner"
      local c = aigc.client { base_url = arg[1], max_retries = 0 }   -- (as the first run's: the same requests)
      local cases = {}
      for i = 1, 4 do cases[i] = { id = "c" .. i, prompt = "Echo: paris " .. ("x"):rep(100) } end
      local ok, s, err = pcall(runner.run, { client = c, out = arg[2], cases = cases,
                                             assert = { { type = "contains", value = "london" } } })
      print(ok, s, type(err) == "table" and err.kind, type(err) == "table" and err.message or err)
      c:close()
    ]], { args = { srv.base_url, out }, lua = wrapper })
    assert.equal(0, r.status, r.stderr)
    local ok, s, kind, message = r.stdout:match("^(%S+)\t(%S+)\t(%S+)\t([^\n]*)")
    assert.same({ "true", "nil", "runner" }, { ok, s, kind }, r.stdout)
    assert.matches("cannot write " .. out .. ": ", message, 1, true)
    assert.equal(4, #srv:requests())   -- (judged again: no request)
  end)
end)
