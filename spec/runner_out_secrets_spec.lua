-- The README's promise on a dataset run's results file and the client's
-- secrets (Dataset runs: "Each case gives one JSON line in --out"): a
-- line is scrubbed of the client's secrets as the prompt log is: its
-- `error`, and its `text` (a key the model or a proxy repeated is not
-- written to disk); the run's result keeps the reply as it came (as a
-- library call's res.text holds it). The server is the bundled one, whose `echo-key`
-- fault writes the request's key into the reply, or into its error.

local aigc = require "aigc"
local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"
local promptlog = require "aigc.promptlog"
local runner = require "aigc.runner"

local KEY = "sk-proj-Zx81QwErTy7uIoPaSdFgHjKl3ZxCvBnM0qWeRtYu"

describe("aigc.runner's results file and the client's key", function ()
  local srv, dir
  devserver.fixture(_ENV, function (s) srv = s end)
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  local function run (model, out, log)
    local client = aigc.client { base_url = srv.base_url, api_key = KEY, max_retries = 0, timeout = 30 }
    local summary, err = runner.run { client = client, out = out, log = log, params = { model = model },
                                      cases = { { id = "a", prompt = "Echo: hello" } } }
    client:close()
    return summary, err
  end

  it("a failed case's error and a reply that repeats the key are scrubbed in the file and the log", function ()
    -- a failure whose error body holds the key (message, nested field, array)
    local failed = dir .. "/failed.jsonl"
    assert(run("fault:status=401,echo-key", failed))
    local text = assert(cli.read(failed))
    local line = proc.json_lines(failed)[1]
    assert.is_false(line.ok)
    assert.equal(401, line.error.status)
    assert.matches("[redacted]", line.error.message, 1, true)
    assert.is_nil(text:find(KEY:sub(1, 12), 1, true), text)
    assert.is_nil(text:find(KEY:sub(-12), 1, true), text)
    -- a reply that repeats the key: the line's text as it came
    local said, db = dir .. "/said.jsonl", dir .. "/logs.db"
    local log = assert(promptlog.open(db))
    local summary = assert(run("fault:echo-key", said, log))
    log:close()
    -- the run's result keeps it, as a library call's res.text does; the file does not
    assert.matches("Your API key is " .. KEY .. ".", summary.results.a.text, 1, true)
    line = proc.json_lines(said)[1]
    assert.is_true(line.ok)
    assert.matches("Your API key is [redacted].", line.text, 1, true)
    text = assert(cli.read(said))
    assert.is_nil(text:find(KEY:sub(1, 12), 1, true), text)
    assert.is_nil(text:find(KEY:sub(-12), 1, true), text)
    -- the prompt log's row of it: scrubbed
    log = assert(promptlog.open(db))
    local rows = log:list {}
    log:close()
    assert.equal(1, #rows)
    local row = rows[1]
    assert.matches("Your API key is [redacted].", row.response, 1, true)
    assert.is_nil(cli.read(db):find(KEY:sub(1, 12), 1, true))
  end)
end)
