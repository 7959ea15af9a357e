-- aigc.runner's files against the bundled server: the lock of a results
-- file reached through symbolic links; resuming a case whose request
-- changed since its result line was written.

local aigc = require "aigc"
local cli = require "cli"
local devserver = require "devserver"
local runfile = require "aigc.runfile"
local runner = require "aigc.runner"
local cjson = require "cjson"

local function rows (path)
  local list = {}
  for line in (cli.read(path) or ""):gmatch("[^\n]+") do list[#list + 1] = cjson.decode(line) end
  return list
end

describe("aigc.runner's results file", function ()
  local srv, client, dir
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function ()
    srv:reset()
    client = aigc.client { base_url = srv.base_url }
    dir = cli.home()
  end)
  after_each(function ()
    client:close()
    cli.rmdir(dir)
  end)

  local function run_to (out)
    return runner.run { client = client, cases = { { id = "a", prompt = "Echo: a" } }, out = out }
  end

  it("is locked as itself: a run through another link to it (or through the file) is refused", function ()
    cli.write(dir .. "/r.jsonl", "")
    assert.is_true(os.execute("ln -s r.jsonl " .. dir .. "/a.jsonl && ln -s " .. dir .. "/r.jsonl " .. dir
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

  it("takes a result line without a digest (an older version's) as done", function ()
    local out = dir .. "/r.jsonl"
    cli.write(out, '{"id":"a","ok":true,"text":"old","pass":true}\n')
    local s = assert(runner.run { client = client, out = out, cases = { { id = "a", prompt = "Echo: new" } } })
    assert.equal(0, #srv:requests())
    assert.equal(1, s.skipped)
    assert.equal("old", s.results.a.text)
  end)
end)
