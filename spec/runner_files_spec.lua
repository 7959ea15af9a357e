-- aigc.runner's files against the bundled server: the lock of a results
-- file reached through symbolic links; resuming a case whose request
-- changed since its result line was written.

local cli = require "cli"
local devserver = require "devserver"
local heapwatch = require "heapwatch"
local proc = require "procutil"
local runfile = require "aigc.runfile"
local runner = require "aigc.runner"

local rows = proc.json_lines

describe("aigc.runner's files", function ()
  local srv, client, dir
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end)
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  describe("the results file", function ()

    local function run_to (out)
      return runner.run { client = client, cases = { { id = "a", prompt = "Echo: a" } }, out = out }
    end

    it("is locked as itself: a run through another link to it (or through the file) is refused", function ()
      cli.write(dir .. "/r.jsonl", "")
      assert.is_true(proc.execute("ln -s r.jsonl " .. dir .. "/a.jsonl && ln -s " .. dir .. "/r.jsonl " .. dir
                                  .. "/b.jsonl"))
      local hold = assert(runfile.lock_out(dir .. "/a.jsonl"))   -- (a run through link a holds it)
      for _, out in ipairs { dir .. "/b.jsonl", dir .. "/r.jsonl", dir .. "/a.jsonl" } do
        local none, err = run_to(out)
        assert.is_nil(none, out)
        assert.equal("locked", err.code)
        assert.matches(out:gsub("%p", "%%%0") .. " is in use: another run %(pid %d+%) is writing it %(its lock is "
                       .. "/.-/r%.jsonl%.lock%)", err.message)
      end
      assert.equal(0, #srv:requests())
      assert.equal("", cli.read(dir .. "/r.jsonl"))
      hold:close()
      assert(run_to(dir .. "/b.jsonl"))                         -- released: the run goes
      assert.equal(1, #srv:requests())
      assert.matches('^{.*"id":"a"', cli.read(dir .. "/r.jsonl"))
    end)

    -- Two hard links to one file (no link between them to resolve) took a
    -- lock each, and a dangling link to a file not yet made took its lock
    -- beside the link: two runs wrote one file. The file itself is locked
    -- now (its inode), and made first (a dangling link's target).
    -- Removed during a run, its lines went on into the unlinked file and the
    -- run ended "ok": nothing kept, nothing to resume from.
    it("removed during a run: the run stops at its next line, nil, err naming it", function ()
      local out, cases = dir .. "/r.jsonl", {}
      for i = 1, 20 do cases[i] = { id = "c" .. i, prompt = "Echo: " .. i } end
      local seen = 0
      local summary, err = runner.run { client = client, cases = cases, out = out, concurrency = 1,
                                        on_result = function ()
                                          seen = seen + 1
                                          if seen == 2 then assert(os.remove(out)) end
                                        end }
      assert.is_nil(summary)
      assert.equal("runner", err.kind)
      assert.equal("cannot write " .. out .. ": it was removed during the run (the lines written since are lost: "
                   .. "run again to resume)", err.message)
      assert.is_true(#srv:requests() <= 4, #srv:requests() .. " requests")
    end)

    it("is locked as one file through two hard links, and through a dangling link to a file not yet made", function ()
      cli.write(dir .. "/r.jsonl", "")
      assert.is_true(proc.execute("mkdir " .. dir .. "/sub && ln " .. dir .. "/r.jsonl " .. dir .. "/sub/h.jsonl"))
      local hold = assert(runfile.lock_out(dir .. "/r.jsonl"))
      local none, err = run_to(dir .. "/sub/h.jsonl")
      assert.is_nil(none)
      assert.equal("locked", err.code)
      assert.matches("sub/h%.jsonl is in use: another run is writing it %(its lock is the file itself", err.message)
      hold:close()
      hold = assert(runfile.lock_out(dir .. "/sub/h.jsonl"))
      err = select(2, run_to(dir .. "/r.jsonl"))
      assert.equal("locked", err and err.code)
      hold:close()
      assert.equal(0, #srv:requests())
      -- a dangling link: its target is the file, made and locked by its name
      assert.is_true(proc.execute("ln -s " .. dir .. "/new.jsonl " .. dir .. "/d.jsonl"))
      hold = assert(runfile.lock_out(dir .. "/d.jsonl"))
      assert.is_false(proc.exists(dir .. "/new.jsonl"))   -- (not made by the lock: `resume = false` refuses a file)
      err = select(2, run_to(dir .. "/new.jsonl"))
      assert.equal("locked", err and err.code)
      assert.matches("its lock is /.-/new%.jsonl%.lock%)", err.message)
      hold:close()
      assert(runner.run { client = client, cases = { { id = "a", prompt = "Echo: a" } }, out = dir .. "/d.jsonl",
                          resume = false })
      assert.equal(1, #srv:requests())
      assert.matches('^{.*"id":"a"', cli.read(dir .. "/new.jsonl"))
      assert.is_false(proc.exists(dir .. "/new.jsonl.lock"))   -- (released, removed)
    end)

    it("runs again a case whose request changed since its line was written (its prompt, the params)", function ()
      local out = dir .. "/r.jsonl"
      local function run (a, model)
        return assert(runner.run { client = client, out = out, params = { model = model or "m1" },
          cases = { { id = "a", prompt = "Echo: " .. a }, { id = "b", prompt = "Echo: same" } } })
      end
      run("one")
      assert.equal(2, #srv:requests())
      local s = run("two")                                       -- a's prompt edited: a alone runs again
      assert.equal(3, #srv:requests())
      assert.equal(1, s.skipped)
      assert.equal("two", s.results.a.text)
      local list = rows(out)
      assert.equal(3, #list)
      assert.equal("a", list[3].id)
      assert.equal("two", list[3].text)
      assert.is_string(list[3].digest)
      s = run("two")                                             -- unchanged: nothing runs
      assert.equal(3, #srv:requests())
      assert.equal(2, s.skipped)
      assert.equal("two", s.results.a.text)
      run("two", "m2")                                           -- another model: both run again
      assert.equal(5, #srv:requests())
      assert.equal(5, #rows(out))
    end)

    it("read back with assertions that are none (a number, a type that is no string): counted without them", function ()
      local out = dir .. "/r.jsonl"
      cli.write(out, '{"id":"a","ok":true,"pass":true,"assertions":[1,"x",{"type":{}},{"type":"contains",'
                .. '"value":"x","pass":true}]}\n{"id":"b","ok":true,"pass":"yes","assertions":[{"type":[]}]}\n')
      for _, results in ipairs { true, false } do
        local s = assert(runner.run { client = client, out = out, results = results,
                                      cases = { { id = "a", prompt = "Echo: a" }, { id = "b", prompt = "Echo: b" } } })
        assert.same({ 2, 2, 1 }, { s.skipped, s.ok, s.passed })
        assert.same({ { name = "contains x", type = "contains", passed = 1, total = 1 } }, s.assertions)
      end
      assert.equal(0, #srv:requests())
    end)

    it("takes a result line without a digest (an older version's) as done", function ()
      local out = dir .. "/r.jsonl"
      cli.write(out, '{"id":"a","ok":true,"text":"old","pass":true}\n')
      local s = assert(runner.run { client = client, out = out, cases = { { id = "a", prompt = "Echo: new" } } })
      assert.equal(0, #srv:requests())
      assert.equal(1, s.skipped)
      assert.equal("old", s.results.a.text)
    end)
  end)

  describe("the cases file", function ()

    local function write_cases (path, n, last)
      local f = assert(io.open(path, "wb"))
      for i = 1, n do f:write('{"id":"c', i, '","prompt":"Echo: hello ', i, '"}\n') end
      if last then f:write(last, "\n") end
      f:close()
    end

    it("is read as the run needs its cases: the heap does not hold the file's 100,000 cases", function ()
      local cases = dir .. "/cases.jsonl"
      write_cases(cases, 100000)
      local grown, none, err = heapwatch.run(runner, { client = client, cases = cases, out = dir .. "/r.jsonl",
                                                        concurrency = 2 })
      assert.is_nil(none)
      assert.equal("interrupted", err.code)
      assert.is_true(#grown >= 3)
      for _, kb in ipairs(grown) do assert.is_true(kb < 12 * 1024, kb .. " KB more") end
    end)

    it("gives the run the cases it checked, not lines appended to it while the run goes", function ()
      local cases = dir .. "/cases.jsonl"
      write_cases(cases, 300)                                 -- (more than a read takes at once)
      local appended = false
      local s = assert(runner.run { client = client, cases = cases, concurrency = 4, on_result = function ()
        if appended then return end
        appended = true
        local f = assert(io.open(cases, "ab"))
        f:write('{"id":"c1","prompt":"Echo: again"}\n{"id":"c6","prompt":"Echo: new"}\n')
        f:close()
      end })
      assert.same({ 300, 300 }, { s.total, s.ok })
      assert.equal(300, srv:stats().requests_total)
    end)

    it("cut short while the run reads it: the run stops with an error, its results so far kept", function ()
      local cases, out = dir .. "/cases.jsonl", dir .. "/r.jsonl"
      write_cases(cases, 300)
      local cut = false
      local none, err = runner.run { client = client, cases = cases, out = out, on_result = function ()
        if cut then return end
        cut = true
        write_cases(cases, 250)                               -- (rewritten in place, shorter)
      end }
      assert.is_nil(none)
      assert.equal("input", err.code)
      -- (the same lines up to the new end: the reader, past what it had read ahead, meets that end; a
      -- reader further on would meet a line cut in two, named, as changed too)
      assert.equal(cases .. " changed while the run read it: it ends after 250 cases, 300 were checked (run it "
                   .. "again to resume)", err.message)
      local lines = select(2, cli.read(out):gsub("\n", ""))
      assert.is_true(lines > 0 and lines < 250, lines)
    end)

    it("resumed, passes over its done cases a step at a time: Ctrl-C and the progress are heard meanwhile", function ()
      local cases, out = dir .. "/cases.jsonl", dir .. "/r.jsonl"
      write_cases(cases, 10000)
      local done = {}
      for i = 1, 10000 do done[i] = '{"id":"c' .. i .. '","ok":true,"pass":true}\n' end
      cli.write(out, table.concat(done))
      local seen = {}
      local none, err = runner.run { client = client, cases = cases, out = out, progress_interval = 0,
        on_progress = function (p) seen[#seen + 1] = p.skipped end,
        interrupted = function () return #seen >= 2 end }
      assert.is_nil(none)
      assert.equal("interrupted", err.code)
      assert.is_true(seen[1] < 10000, tostring(seen[1]))
      assert.equal(0, srv:stats().requests_total)
    end)

    it("is told from a list of cases with fields `total` and `open` of its own", function ()
      local cases = { { id = "a", prompt = "Echo: a" }, total = 7, open = function () error("opened") end }
      local s = assert(runner.run { client = client, cases = cases })
      assert.same({ 1, 1 }, { s.total, s.ok })
    end)

    it("is checked whole before anything is sent: a bad last line is refused, naming it", function ()
      local cases = dir .. "/cases.jsonl"
      write_cases(cases, 2000, '{"id":"c7","prompt":"Echo: again"}')
      local none, err = runner.run { client = client, cases = cases }
      assert.is_nil(none)
      assert.equal(cases .. ":2001: two cases have the id c7 (lines 7 and 2001): ids must be unique", err.message)
      write_cases(cases, 2000, '{"id":"x","prompt":"Echo: x"')
      none, err = runner.run { client = client, cases = cases }
      assert.is_nil(none)
      assert.matches("^" .. cases:gsub("%p", "%%%0") .. ":2001: not a JSON object", err.message)
      assert.equal(0, #srv:requests())
    end)

    it("with results = false: no summary.results, and a resumed run counts what it skips as before", function ()
      local cases, out = dir .. "/cases.jsonl", dir .. "/r.jsonl"
      write_cases(cases, 6)
      local spec = { client = client, cases = cases, out = out, results = false,
                     assert = { { type = "contains", value = "hello" } } }
      local s = assert(runner.run(spec))
      assert.is_nil(s.results)
      assert.same({ 6, 0, 6, 6 }, { s.total, s.skipped, s.ok, s.passed })
      write_cases(cases, 8)                                    -- two more cases: they alone run
      cli.write(out, cli.read(out) .. '{"id":"c8","ok":true,"text":"x","pass":false}\n')   -- (an older line)
      s = assert(runner.run(spec))
      assert.equal(7, #srv:requests())
      assert.same({ 8, 7, 8, 7 }, { s.total, s.skipped, s.ok, s.passed })
      assert.same({ { name = "contains hello", type = "contains", passed = 7, total = 7 } }, s.assertions)
      cli.write(cases, (cli.read(cases):gsub("hello 7", "hi 7")))   -- c7 edited: it alone runs again
      s = assert(runner.run(spec))
      assert.equal(8, #srv:requests())
      assert.same({ 8, 7, 8 }, { s.total, s.skipped, s.ok })
    end)
  end)
end)
