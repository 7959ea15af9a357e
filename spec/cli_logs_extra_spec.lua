-- `aigc logs` over what a row keeps in `extra`: its text repaired for
-- --json, searched by -q (every choice of an `-n 3` call, every candidate
-- of --best-of/--vote), a call's retries shown.

local cjson = require "cjson"
local cli = require "cli"
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
end)
