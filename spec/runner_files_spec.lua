-- aigc.runner's files against the bundled server: the lock of a results
-- file reached through symbolic links.

local aigc = require "aigc"
local cli = require "cli"
local devserver = require "devserver"
local runfile = require "aigc.runfile"
local runner = require "aigc.runner"

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
end)
