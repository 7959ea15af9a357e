-- A client's prompt_log while another process holds the database's lock
-- (a second `aigc`, a backup): a write from the loop waited up to the
-- log's 10 s busy timeout inside `client:step(0)` (a game's frame froze),
-- then dropped the row. Now the step returns with the row kept, and the
-- rows are written, in order and once each, when the lock is free.

local aigc = require "aigc"
local cli = require "cli"
local devserver = require "devserver"
local luachild = require "luachild"
local logdb = require "logdb"
local proc = require "procutil"

local has_sqlite = pcall(require, "luasql.sqlite3")
local pending_rows = require "aigc.promptlog_pending"
local store = require "aigc.promptlog_store"

-- The busy timeouts (ms) the client's log sets around its writes, from
-- now on; the second result stops watching.
local function watch_waits ()
  local waits, exec = {}, store.exec
  store.exec = function (self, q)
    local ms = tostring(q):match("^PRAGMA busy_timeout = (%d+)$")
    if ms then waits[#waits + 1] = tonumber(ms) end
    return exec(self, q)
  end
  return waits, function () store.exec = exec end
end


local function touch (file)
  local f = assert(io.open(file, "w"))
  f:close()
end

describe("a client's prompt_log while another process holds the lock", function ()
  local dir, path, srv, holder, release, unwatch
  before_each(function ()
    if not has_sqlite then return end
    dir = cli.home()
    path = dir .. "/logs.db"
    release = dir .. "/release"
    srv = devserver.start()
  end)
  after_each(function ()
    if not has_sqlite then return end
    if holder then
      touch(release)
      holder:wait(30)
      holder = nil
    end
    srv:stop()
    cli.rmdir(dir)
    pending_rows.MAX = 64
    if unwatch then unwatch(); unwatch = nil end
  end)

  local function hold ()
    holder = luachild.run(logdb.LOCK_HOLDER, { background = true, args = { path, release } })
    holder:until_printed("locked", 60)
  end

  local function let_go ()
    touch(release)
    holder:until_printed("released", 60)
    local r = holder:wait(30)
    holder = nil
    assert.equal(0, r.status, r.stderr)
  end

  local function still_held ()
    return not (proc.read_file(holder.stdout_path) or ""):find("released", 1, true)
  end

  -- A client logging to `path` while the other process holds the lock, and
  -- the list its error_handler fills (every test's start).
  local function locked_client ()
    local reports = {}
    local client = aigc.client { base_url = srv.base_url, model = "aigc-dev", prompt_log = path,
                                 error_handler = function (e) reports[#reports + 1] = e end }
    hold()
    return client, reports
  end

  -- Ends one chat_async call in the steps of a frame loop.
  local function frame_call (client, prompt)
    local done
    client:chat_async { messages = { { role = "user", content = prompt } },
                        on_done = function () done = true end, on_error = function (e) done = e end }
    while done == nil do client:step(0.05) end
    assert.is_true(done)
  end

  it("step() returns with the lock still held, and the rows come once it is free, in order, once each", function ()
    if not has_sqlite then pending("no lua-sql-sqlite3") return end
    local client, reports = locked_client()
    local waits
    waits, unwatch = watch_waits()
    frame_call(client, "Echo: one")
    frame_call(client, "Echo: two")
    -- a task's blocking call is the loop's too: its row waits as well
    client:spawn(function () assert(client:chat "Echo: three") end)
    while client:step(0.05) > 0 do end
    assert.is_true(still_held())          -- every step returned while the other process held the lock
    assert.same({}, reports)              -- nothing was lost (nor reported)
    assert.same({}, logdb.prompts(path))        -- kept, not written
    -- every write tried waited 2 ms at most for the lock, then set the log's 10 s back
    assert.is_true(#waits >= 6)
    for i, ms in ipairs(waits) do assert.equal(i % 2 == 1 and 2 or 10000, ms) end
    let_go()
    client:step(0)                        -- a later step writes them
    assert.same({ "Echo: one", "Echo: two", "Echo: three" }, logdb.prompts(path))
    client:step(0)
    frame_call(client, "Echo: four")      -- and the log goes on as before
    client:close()
    assert.same({ "Echo: one", "Echo: two", "Echo: three", "Echo: four" }, logdb.prompts(path))
    assert.same({}, reports)
  end)

  it("close() writes the rows the lock kept out, as the calls were (not as the caller changed them after)", function ()
    if not has_sqlite then pending("no lua-sql-sqlite3") return end
    local client, reports = locked_client()
    local msgs = { { role = "system", content = "Be brief." }, { role = "user", content = "Echo: zero" },
                   { role = "assistant", content = "zero" }, { role = "user", content = "Echo: one" } }
    local done
    local params = { messages = msgs, temperature = 0, on_done = function () done = true end }
    client:chat_async(params)
    while not done do client:step(0.05) end
    -- (a game's history goes on: the next turn appended, an old one edited)
    msgs[2].content = "edited"
    msgs[4].content = "edited too"
    msgs[#msgs + 1] = { role = "assistant", content = "one" }
    msgs[#msgs + 1] = { role = "user", content = "Echo: two" }
    params.temperature = 1
    frame_call(client, "Echo: three")
    assert.is_true(still_held())
    let_go()
    client:close()
    assert.same({ "Echo: one", "Echo: three" }, logdb.prompts(path))
    assert.same({}, reports)
    local log = assert(require("aigc.promptlog").open(path))
    local rows = log:list { n = 0 }
    log:close()
    assert.equal("Be brief.", rows[2].system)
    assert.same({ { role = "user", content = "Echo: zero" }, { role = "assistant", content = "zero" } },
                rows[2].context)
    assert.same({ temperature = 0 }, rows[2].params)
  end)

  -- Rows kept beside the log (LOG-kept) that an open claims while the lock
  -- is held are put back for a later open: copied back, on a full disk the
  -- copy was cut (its close unchecked) and the claimed file, their last
  -- copy, removed. Now the claimed file is renamed back (no space needed).
  it("rows kept beside the log, claimed while the lock is held on a full disk, stay whole for a later open",
     function ()
    if not has_sqlite then return pending("needs luasql.sqlite3") end
    require("aigc.promptlog").open(path):close()
    local lines = {}
    for i = 1, 20 do lines[i] = '{"model":"m","prompt":"kept row ' .. i .. " " .. ("x"):rep(100) .. '"}' end
    cli.write(path .. "-kept", table.concat(lines, "\n") .. "\n")
    hold()
    local wrapper = dir .. "/lua-full-disk"   -- (a write past `ulimit -f` fails with EFBIG, as on a full disk)
    cli.write(wrapper, "#!/bin/sh\ntrap '' XFSZ\nulimit -f 1\nexec '" .. luachild.interpreter() .. "' \"$@\"\n")
    os.execute("chmod 755 '" .. wrapper .. "'")
    local r = luachild.run([[require("aigc.promptlog").open(arg[1]):close(); print("opened")]],
                           { args = { path }, lua = wrapper })
    assert.equal(0, r.status, r.stderr)
    assert.equal("opened\n", r.stdout)
    assert.equal(table.concat(lines, "\n") .. "\n", cli.read(path .. "-kept"))
    let_go()
    require("aigc.promptlog").open(path):close()   -- (the lock free: adopted)
    assert.equal(20, #logdb.prompts(path))
  end)

  it("keeps at most MAX rows: the next one is dropped and reported, kind 'log'", function ()
    if not has_sqlite then pending("no lua-sql-sqlite3") return end
    assert.equal(64, pending_rows.MAX)
    pending_rows.MAX = 2
    local client, reports = locked_client()
    frame_call(client, "Echo: one")
    frame_call(client, "Echo: two")
    frame_call(client, "Echo: three")
    frame_call(client, "Echo: four")
    assert.is_true(still_held())
    assert.equal(1, #reports)             -- (the first failure; again only after a write worked)
    assert.equal("log", reports[1].kind)
    assert.matches("the prompt log did not record a call: the database stayed locked", reports[1].message, 1, true)
    let_go()
    client:step(0)
    assert.same({ "Echo: one", "Echo: two" }, logdb.prompts(path))
    client:close()
  end)

  it("a blocking call outside a task waits for the lock as the log says (its caller waits anyway)", function ()
    if not has_sqlite then pending("no lua-sql-sqlite3") return end
    local client, reports = locked_client()
    local waits
    waits, unwatch = watch_waits()
    -- (the lock is let go while the reply streams in, before the call's
    -- end: the write then waits for it, up to the log's 10 s)
    local res = assert(client:chat { messages = { { role = "user", content = "Echo: blocking" } },
                                     stream = function () touch(release) end })
    assert.equal("blocking", res.text)
    assert.same({ "Echo: blocking" }, logdb.prompts(path))   -- written before chat returned
    assert.same({}, waits)                             -- (with the log's own timeout)
    assert.same({}, reports)
    client:close()
  end)
end)
