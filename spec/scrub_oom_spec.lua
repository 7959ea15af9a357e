-- Two Lua scrubs that failed open when the secrets search ran out of
-- memory: `aigc run`'s batch lines (the batch id and status the summary
-- quotes: cli/run.lua) kept the server's text as it came, and the prompt
-- log's scrubber (promptlog_redact) fell back to replacing the key
-- variables' values whole, so a header credential of the client, a cut
-- or a base64'd key went into the log's rows. Both now withhold what
-- they could not scrub.
--
-- Real memory errors: the test host fails the n-th allocation growth of
-- the call and every one after (until reset), for every n up to past the
-- call's last one.
local luachild = require "luachild"

local KEY = "sk-proj-" .. ("Oo81QwErTy7uIoPaSdFgHjKl3ZxCvBnM"):rep(2)

local SCRIPT = [[
  local aigc = require "aigc"
  local run = require "aigc.cli.run"
  local redact = require "aigc.promptlog_redact"
  local key = arg[1]
  -- the key as a header credential: not the api_key, not in the environment
  local c = aigc.client { base_url = "http://127.0.0.1:9/v1", headers = { ["X-Api-Key"] = key } }
  local clean = redact.scrubber { client = c }
  local runs, shown = 0, {}
  for n = 1, 150 do
    local summary = { batch_id = "batch_" .. key,
                      abandoned_batch = { id = "b", status = "failed", error = "failed: " .. key .. " refused" } }
    local said = "the server said " .. key
    aigc_host_failat(n, 1000000)   -- luacheck: ignore 113 (the test host's)
    pcall(run.scrub_summary, summary, c)
    local ok, s = pcall(clean, said)
    aigc_host_failat(0)   -- luacheck: ignore 113
    shown[#shown + 1] = tostring(summary.batch_id) .. "|" .. tostring(summary.abandoned_batch.error)
    if ok then shown[#shown + 1] = tostring(s) end
    runs = runs + 1
  end
  c:close()
  io.write(runs, " runs\n", table.concat(shown, "\n"), "\n")
]]

describe("a Lua scrub out of memory", function ()
  it("withholds aigc run's batch lines and the prompt log's strings, whichever allocation fails", function ()
    local host = luachild.host()
    if not host then pending("no C compiler to build spec/support/lua_host.c"); return end
    local r = luachild.run(SCRIPT, { lua = host, args = { KEY }, timeout = 120 })
    assert.equal(0, r.status, r.stderr)
    assert.matches("^150 runs\n", r.stdout)
    for i = 1, #KEY - 11 do
      assert.is_nil(r.stdout:find(KEY:sub(i, i + 11), 1, true), "a piece of the key shown")
    end
    -- (scrubbed when memory allows, withheld where it did not)
    assert.matches("batch_[redacted]|failed: [redacted] refused\n", r.stdout, 1, true)
    assert.matches("the server said [redacted]\n", r.stdout, 1, true)
    assert.matches("withheld", r.stdout, 1, true)
  end)
end)
