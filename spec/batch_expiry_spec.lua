-- A batch the server never ends: `aigc.batch.wait` polled it until Ctrl-C,
-- past its `expires_at` (or its `created_at` and `completion_window`);
-- `aigc run --batch` had no way to give up (`--batch-timeout` now), and
-- ending so keeps the state a rerun resumes from (OUT.batch).

local aigc = require "aigc"
local batch = require "aigc.batch"
local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"
local routed = require "routed"

describe("a batch the server never ends", function ()
  describe("aigc.batch.wait", function ()
    local srv, client
    setup(function () srv = routed.start() end)
    teardown(function () srv:stop() end)
    before_each(function ()
      client = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = "k", max_retries = 0, timeout = 10 }
    end)
    after_each(function () client:close() end)

    local function stuck (fields)
      srv:serve { ["GET /v1/batches/b"] = { body = '{"id":"b","status":"in_progress"' .. fields .. '}' } }
      srv:forget()
    end

    it("gives up past its expires_at (and the grace for a skewed clock), kind timeout", function ()
      local due = os.time() - batch.EXPIRY_GRACE - 120
      stuck(',"expires_at":' .. due)
      local none, err = batch.wait(client, "b", { interval = 0.01 })
      assert.is_nil(none)
      assert.equal("timeout", err.kind)
      local when = os.date("!%Y-%m-%dT%H:%M:%SZ", due):gsub("%p", "%%%0")
      assert.matches("^batch b still in_progress 3[67]%d%d s past its expiry %(" .. when
                     .. "%): the server does not end it$", err.message)
      assert.equal("b", err.batch.id)
      assert.equal(1, #srv:requests())
    end)

    it("gives up past its created_at and completion_window when it has no expires_at", function ()
      stuck(',"created_at":' .. (os.time() - 86400 - batch.EXPIRY_GRACE - 60) .. ',"completion_window":"24h"')
      local none, err = batch.wait(client, "b", { interval = 0.01 })
      assert.is_nil(none)
      assert.matches("past its expiry", err.message)
    end)

    it("polls on within the grace, and where the expiry is nonsense, until its own timeout", function ()
      for _, fields in ipairs { ',"expires_at":' .. (os.time() - 60), ',"expires_at":-5', ',"expires_at":"soon"',
                                ',"expires_at":1e300', ',"created_at":1,"completion_window":"a while"' } do
        stuck(fields)
        -- (0.5 s: room for a second poll however slow the first one is under CI's load;
        -- times AIGC_TIMEOUT_SCALE: under valgrind one poll alone could take that long)
        local limit = 0.5 * (tonumber(os.getenv("AIGC_TIMEOUT_SCALE")) or 1)
        local none, err = batch.wait(client, "b", { interval = 0.01, timeout = limit })
        assert.is_nil(none)
        assert.equal("batch b still in_progress after " .. limit .. " s", err.message)
        assert.is_true(#srv:requests() > 1, fields)
      end
    end)
  end)

  describe("aigc run --batch --batch-timeout", function ()
    it("stops waiting after it, naming the batch; OUT.batch keeps it and a rerun takes its results", function ()
      local srv = devserver.start { batch_delay_ms = 1000 }   -- (a slow batch: 1 s a line)
      finally(function () srv:stop() end)
      local home = cli.home()
      finally(function () cli.rmdir(home) end)
      local cases, out = home .. "/cases.jsonl", home .. "/r.jsonl"
      cli.write(cases, '{"id":"c1","prompt":"Echo: one"}\n')
      local args = { "run", cases, "--batch", "-q", "--no-log", "-m", "aigc-dev", "--out", out,
                     "--batch-timeout", "0.2" }
      local r = cli.run(args, { home = home, base_url = srv.base_url })
      assert.equal(1, r.code, r.stderr)
      local id = r.stderr:match("batch (batch_%S+) goes on at the server")
      assert.is_string(id, r.stderr)
      assert.matches("still %w+ after 0.2 s", r.stderr)
      assert.equal(id, proc.read_file(out .. ".batch"):match("^[^\n]+"))
      assert.equal("", proc.read_file(out) or "")
      table.remove(args); table.remove(args)   -- (no timeout: it waits for the batch it resumes)
      r = cli.run(args, { home = home, base_url = srv.base_url })
      assert.equal(0, r.code, r.stderr)
      assert.equal(id, proc.json_lines(out)[1].batch_id)
    end)

    it("is refused without --batch, or when it is no number of seconds", function ()
      for _, extra in ipairs { { "--batch-timeout", "5" }, { "--batch", "--batch-timeout", "0" },
                               { "--batch", "--batch-timeout", "inf" } } do
        local args = { "run", "cases.jsonl" }
        for _, a in ipairs(extra) do args[#args + 1] = a end
        local r = cli.run(args, {})
        assert.equal(2, r.code, r.stderr)
        assert.matches("%-%-batch%-timeout", r.stderr)
      end
    end)
  end)
end)
