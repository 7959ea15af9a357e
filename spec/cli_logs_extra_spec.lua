-- `aigc logs` over what a row keeps in `extra`: its text repaired for
-- --json, searched by -q (every choice of an `-n 3` call, every candidate
-- of --best-of/--vote), a call's retries shown.

local cjson = require "cjson"
local cli = require "cli"
local devserver = require "devserver"
local logdb = require "logdb"

local has_sqlite = pcall(require, "luasql.sqlite3")
local FFFD = "\239\191\189"

describe("aigc logs and extra", function ()
  local dir, path, log
  before_each(function ()
    if not has_sqlite then return end
    dir, path, log = logdb.open()
  end)
  after_each(function () if has_sqlite then logdb.close(dir, log) end end)

  local function logs (args)
    local full = { "logs", "--log-db", path }
    for _, a in ipairs(args) do full[#full + 1] = a end
    return cli.run(full, { home = dir })
  end

  it("--json repairs text that is not UTF-8 inside extra too (a blob keeps its bytes)", function ()
    if not has_sqlite then pending("no lua-sql-sqlite3") return end
    -- (a string of 4 KiB or more is kept as it is, in blobs; a short one is repaired when written)
    local long = string.rep("a", 5000) .. "\233t\233"
    assert(log:record { prompt = "p", response = "r", status = "ok",
                        extra = { note = long, list = { "x\255" }, ok = "fine" } })
    log:close(); log = nil
    local r = logs { "--json" }
    assert.equal(0, r.code, r.stderr)
    local entries = cjson.decode(r.stdout)
    assert.equal(1, #entries)
    assert.equal(string.rep("a", 5000) .. FFFD .. "t" .. FFFD, entries[1].extra.note)
    assert.same({ "x" .. FFFD }, entries[1].extra.list)
    assert.equal("fine", entries[1].extra.ok)
  end)

  it("a call the engine retried keeps how many times (extra.retries); show and a listing say it", function ()
    if not has_sqlite then pending("no lua-sql-sqlite3") return end
    local srv = devserver.start()
    finally(function () srv:stop() end)
    -- (twice a 503 then the reply; a failure after one retry; a call with none)
    local function ask (model, extra)
      local args = { "--log-db", path, "-m", model, "--no-stream" }
      for _, a in ipairs(extra or {}) do args[#args + 1] = a end
      args[#args + 1] = "Hi"
      return cli.run(args, { home = dir, base_url = srv.base_url })
    end
    assert.equal(0, ask("fault:status=503,retry-after-ms=1,times=2").code)
    assert.equal(1, ask("fault:status=500,retry-after-ms=1", { "-o", "max_retries=1" }).code)
    assert.equal(0, ask("aigc-dev").code)
    local rows = log:list { n = 0 }
    assert.equal(3, #rows)
    assert.is_nil(rows[1].extra and rows[1].extra.retries)   -- (newest first)
    assert.equal("http", rows[2].status)
    assert.equal(1, rows[2].extra.retries)
    assert.equal("ok", rows[3].status)
    assert.equal(2, rows[3].extra.retries)
    local r = logs { "show", tostring(rows[3].id) }
    assert.equal(0, r.code, r.stderr)
    assert.matches("  2 retries", r.stdout, 1, true)
    r = logs { "-n", "3" }
    assert.matches("  1 retry\n", r.stdout:gsub("  from %w+", ""), 1, true)
    assert.equal(2, select(2, r.stdout:gsub(" retr", "")))
  end)
end)
