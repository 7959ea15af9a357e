-- README promises of Dataset runs (the runs2 branch) that no spec held to:
-- a pipe's cases are kept in a private temporary file (mode 0600: the
-- prompts another user of the machine must not read), and `aigc run --batch
-- --cancel` finds, by its token, the batch a stopped run asked for before it
-- kept its id (OUT.batch keeps only the intent), among the server's newest
-- (here on the second page of its list); a strategy function edited does
-- not make a done case run again. Pending where this
-- checkout's runner has neither (runfile.spool, batch_backend.kept).

local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"
local runfile = require "aigc.runfile"

local has_spool = runfile.spool ~= nil
local has_intent = pcall(require, "aigc.batch_backend") and require("aigc.batch_backend").kept ~= nil

describe("aigc run's README promises", function ()
  local srv, home
  setup(function () srv = devserver.start {} end)
  teardown(function () srv:stop() end)
  before_each(function () srv:reset(); home = cli.home() end)
  after_each(function () cli.rmdir(home) end);

  (has_spool and it or pending)("a pipe's cases are kept in a temporary file only its owner reads (0600)", function ()
    local src = home .. "/cases.jsonl"
    cli.write(src, '{"id":"a","prompt":"Echo: secret plans"}\n')
    -- (in a child whose umask is 000: a file made with the default mode would be 0666)
    local tmp = assert(proc.first_line("umask 000; " .. proc.lua_command() .. " -e " .. proc.quote(
      "io.write(assert(require('aigc.runfile').spool(" .. ("%q"):format(src) .. ")))")))
    finally(function () os.remove(tmp) end)
    assert.equal("600", proc.mode(tmp))
    assert.equal('{"id":"a","prompt":"Echo: secret plans"}\n', cli.read(tmp))
  end);

  it("a strategy function counts as one strategy: its code edited does not make a done case run again", function ()
    local aigc = require "aigc"
    local runner = require "aigc.runner"
    local client = aigc.client { base_url = srv.base_url, max_retries = 0, timeout = 30 }
    finally(function () client:close() end)
    local out = home .. "/r.jsonl"
    local function run (strategy)
      return assert(runner.run { client = client, out = out, results = false, strategy = strategy,
                                 params = { model = "aigc-dev" },
                                 cases = { { id = "a", prompt = "Echo: one" }, { id = "b", prompt = "Echo: two" } } })
    end
    run(function (c, params) return c:chat(params) end)
    local sent = #srv:requests()
    assert.equal(2, sent)
    -- the same run, its function edited (another closure, other code)
    local summary = run(function (c, params) local res, err = c:chat(params); return res, err end)
    assert.equal(sent, #srv:requests())
    assert.equal(2, summary.total)
    assert.equal(2, #proc.json_lines(out))
  end);

  (has_intent and it or pending)("--batch --cancel cancels the batch a stopped run asked for, found by its token",
                                 function ()
    local aigc = require "aigc"
    local batch = require "aigc.batch"
    local client = aigc.client { base_url = srv.base_url, max_retries = 0, timeout = 30 }
    finally(function () client:close() end)
    local token = "0123456789abcdef0123456789abcdef"
    -- the batch the stopped run's request made (its metadata carries the
    -- token), among others; slow, so it is still running when canceled
    local requests = { { custom_id = "c1", body = { model = "aigc-dev", messages = { { role = "user",
                                                    content = "Echo: one" } } } } }
    local other = assert(batch.create(client, requests, { metadata = { aigc_delay_ms = "60000" } }))
    local made = assert(batch.create(client, requests, { metadata = { aigc_run = token, aigc_delay_ms = "60000" } }))
    -- (and 120 made since: it is on the second page of the server's list)
    for _ = 1, 120 do
      assert(client:request("POST", "/batches", { input_file_id = made.input_file_id, completion_window = "24h",
                                                  endpoint = "/v1/chat/completions",
                                                  metadata = { aigc_delay_ms = "60000" } }))
    end
    local cases, out = home .. "/cases.jsonl", home .. "/r.jsonl"
    cli.write(cases, '{"id":"c1","prompt":"Echo: one"}\n')
    cli.write(out .. ".batch", "pending " .. token .. "\n{}\n")   -- (as a run stopped then leaves it)
    local r = cli.run({ "run", cases, "--batch", "--cancel", "-m", "aigc-dev", "--out", out },
                      { home = home, base_url = srv.base_url, env = { AIGC_NO_LOG = "1" } })
    assert.equal(0, r.code, r.stderr)
    assert.matches(made.id, r.stdout .. r.stderr, 1, true)
    local canceled = {}
    for _, q in ipairs(srv:requests()) do
      local id = q.method == "POST" and q.path:match("^/v1/batches/([^/]+)/cancel$")
      if id then canceled[#canceled + 1] = id end
    end
    assert.same({ made.id }, canceled)
    assert.matches("^cancell", assert(batch.retrieve(client, made.id)).status)
    assert.is_nil(assert(batch.retrieve(client, other.id)).status:match("^cancel"))   -- (the other one goes on)
  end)
end)
