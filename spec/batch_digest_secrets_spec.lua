-- The digests of its lines' requests that OUT.batch keeps (the runner's
-- batch backend) hold no secret: a case's `api_key` param goes in the
-- line's body, and the digest was an unsalted 64-bit hash of that body,
-- from which a short key was found again by trying keys.

local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"
local runner = require "aigc.runner"
local json = require("aigc.core").json

describe("the runner's batch backend, OUT.batch's digests", function ()
  local client, dir
  devserver.fixture(_ENV, function (_, c) client = c end, { model = "m" })
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  -- The text of OUT.batch of a run stopped once its batch was sent.
  local function kept (out, key)
    local ok, e = pcall(runner.run, { client = client, backend = "batch", batch_interval = 0.02, out = out,
      cases = { { id = "a", prompt = "What is the capital of Spain?" } }, params = { api_key = key },
      batch_metadata = { aigc_delay_ms = "100000" },
      on_progress = function () error("stopped") end })
    assert.is_false(ok)
    assert.matches("stopped", tostring(e))
    return assert(proc.read_file(out .. ".batch"))
  end

  it("are those of the requests without their key", function ()
    local one = kept(dir .. "/one.jsonl", "sk-d1")
    local two = kept(dir .. "/two.jsonl", "sk-d2")
    local d1 = json.decode(one:match("\n(.*)$")).a
    local d2 = json.decode(two:match("\n(.*)$")).a
    assert.is_string(d1)
    assert.equal(d1, d2)   -- (nothing of the key in it)
    assert.is_nil(one:find("sk-d1", 1, true))
    assert.is_nil(two:find("sk-d2", 1, true))
  end)
end)
