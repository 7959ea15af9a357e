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

  it("-n beyond what a log holds lists them all (-n 1e300 failed: 'log: LuaSQL: datatype mismatch')", function ()
    if not has_sqlite then pending("no lua-sql-sqlite3") return end
    for i = 1, 4 do assert(log:record { prompt = "p" .. i, response = "r" .. i, status = "ok" }) end
    log:close(); log = nil
    for _, n in ipairs { "1e300", "9223372036854775808" } do
      local r = logs { "--json", "-n", n }
      assert.equal(0, r.code, r.stderr)
      local entries = cjson.decode(r.stdout)
      assert.equal(4, #entries)
      assert.equal("p1", entries[1].prompt)
    end
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
    -- (aigc chat logs its turns itself: a retried one alike)
    local chat = cli.run({ "chat", "--log-db", path, "-m", "fault:status=503,retry-after-ms=1,times=1", "--no-stream" },
                         { home = dir, base_url = srv.base_url, stdin = "Hi\n" })
    assert.equal(0, chat.code, chat.stderr)
    local turn = log:list { n = 1 }[1]
    assert.equal("chat", turn.source)
    assert.equal(1, turn.extra and turn.extra.retries)
    r = logs { "-n", "3" }
    assert.matches("  1 retry\n", r.stdout:gsub("  from %w+", ""), 1, true)
    assert.equal(2, select(2, r.stdout:gsub(" retr", "")))   -- (the chat's turn and the failure)
  end)

  it("-q finds every choice of an -n 3 call and every best-of/vote candidate, not only the first text", function ()
    if not has_sqlite then pending("no lua-sql-sqlite3") return end
    local srv = devserver.start()
    finally(function () srv:stop() end)
    -- (the bundled server's third choice of three is another sentence: "... an interesting point ...")
    local r = cli.run({ "--log-db", path, "-n", "3", "--no-stream", "Tell me a story" },
                      { home = dir, base_url = srv.base_url })
    assert.equal(0, r.code, r.stderr)
    assert.matches("interesting point", r.stdout, 1, true)
    local n3 = log:list { n = 1 }[1]
    assert.is_nil(n3.response:find("interesting", 1, true))
    -- (candidates as best-of logs them; the long one kept as a blob; a row with other things in extra)
    local cands = assert(log:record { prompt = "Name a city", response = "Paris", status = "ok",
      extra = { strategy = "best_of", chosen = 1, candidates = { { text = "Paris", score = 9 },
        { text = "Bordeaux 50%_off", score = 3 }, { text = string.rep("z", 5000) .. " Marseille", score = 1 },
        { error = "timeout Lyon" } } } })
    assert(log:record { prompt = "other", response = "r", status = "ok",
                        extra = { choices = "Bordeaux", candidates = { "Bordeaux" }, note = "Bordeaux Marseille" } })
    local function found (q)
      local res = logs { "-q", q, "-n", "0", "--json" }
      assert.equal(0, res.code, res.stderr)
      local ids = {}
      for i, e in ipairs(cjson.decode(res.stdout)) do ids[i] = e.id end
      return ids
    end
    assert.same({ n3.id }, found "interesting")
    assert.same({ n3.id }, found "INTERESTING point")      -- (case aside, every word)
    assert.same({}, found "interesting Paris")               -- (every word, in the same row)
    assert.same({ cands }, found "bordeaux")                 -- (text of the candidates only, not other extra)
    assert.same({ cands }, found "marseille")                -- (a text kept as a blob)
    assert.same({ cands }, found "50%_off")
    assert.same({}, found "5%off")                            -- (% and _ are text, not LIKE's)
    assert.same({}, found "Bordeaux_50")
    assert.same({}, found "Lyon")                             -- (a candidate's error is no text it gave)
    assert.same({}, found "choices")                          -- (the JSON's names are not searched)
    local listing = logs { "-q", "interesting" }
    assert.equal(0, listing.code, listing.stderr)
    assert.matches("[choice 3 of 3]", listing.stdout, 1, true)
  end)
end)
