-- aigc.utc: UTC timestamps by arithmetic on os.time(), not os.date("!..."),
-- whose gmtime(3) on Lua 5.1 and 5.2 is one buffer for all the threads of
-- a process (states on several threads could read each other's time).

local utc = require "aigc.utc"
local store = require "aigc.promptlog_store"
local aigc = require "aigc"
local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"
local runner = require "aigc.runner"

local ISO = "!%Y-%m-%dT%H:%M:%SZ"

-- Runs f with os.date raising: what f returns, or the error.
local function without_os_date (f)
  local date = os.date
  os.date = function () error("os.date called", 2) end   -- luacheck: ignore 122
  local ok, a = pcall(f)
  os.date = date   -- luacheck: ignore 122
  assert(ok, a)
  return a
end

describe("aigc.utc", function ()
  it("gives what os.date('!...') gives, at every day of 200 years and 100,000 random times", function ()
    local bad = {}
    local function check (t)
      if utc.iso(t) ~= os.date(ISO, t) and #bad < 5 then bad[#bad + 1] = { t, utc.iso(t), os.date(ISO, t) } end
    end
    for t = 0, 200 * 366 * 86400, 86400 + 3607 do check(t) end
    for _, t in ipairs { 0, 86399, 951782400, 951868799, 1709251199, 4107542400, 4102444799 } do check(t) end
    math.randomseed(40)
    for _ = 1, 100000 do check(math.floor(math.random() * 2 ^ 32)) end
    assert.same({}, bad)
  end)

  it("the prompt log's row time and a run's finished_at are made without os.date", function ()
    local before = os.time()
    local stamp = without_os_date(store.now_iso)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", stamp)
    assert.is_true(stamp >= os.date(ISO, before) and stamp <= os.date(ISO, os.time()))

    local srv = devserver.start()
    local client = aigc.client { base_url = srv.base_url }
    local dir = cli.home()
    local out = dir .. "/results.jsonl"
    without_os_date(function ()
      return assert(runner.run { client = client, out = out, cases = { { id = "a", prompt = "Hello" } },
                                 params = { model = "gpt-4o-mini" } })
    end)
    client:close()
    srv:stop()
    local line = proc.json_lines(out)[1]
    cli.rmdir(dir)
    assert.is_true(line.ok)
    assert.is_true(line.finished_at >= os.date(ISO, before) and line.finished_at <= os.date(ISO, os.time()))
  end)
end)
