-- A client's prompt_log keeps in memory the rows that another process's
-- lock kept out (aigc.promptlog_pending), written at a later step or at
-- close(). A program that ended without close() lost them: nothing wrote
-- them at exit. The log's finalizer now does, once the lock is free.

local cli = require "cli"
local devserver = require "devserver"
local luachild = require "luachild"
local logdb = require "logdb"
local proc = require "procutil"
local socket = require "socket"

local has_sqlite = pcall(require, "luasql.sqlite3")


-- Two calls ended in a frame loop's steps while the lock is held (their
-- rows kept), then the lock let go, then the end of the script: no close().
local PROGRAM = [[
local aigc = require "aigc"
local url, path, release, holder_out = arg[1], arg[2], arg[3], arg[4]
local client = aigc.client { base_url = url, model = "aigc-dev", prompt_log = path,
                             error_handler = function (e) io.stderr:write("reported: ", e.message, "\n") end }
for _, prompt in ipairs { "Echo: one", "Echo: two" } do
  local done
  client:chat_async { messages = { { role = "user", content = prompt } },
                      on_done = function () done = true end, on_error = function (e) done = e end }
  while done == nil do client:step(0.05) end
  assert(done == true)
end
io.stdout:write("kept ", #(client._log_pending or {}), "\n")
assert(io.open(release, "w")):close()
for _ = 1, 6000 do   -- (until the holder has committed)
  local f = io.open(holder_out, "rb")
  local said = f and f:read("*a") or ""
  if f then f:close() end
  if said:find("released", 1, true) then break end
  os.execute("sleep 0.02")
end
io.stdout:write("exiting\n")
]]

-- A fresh home, its log, a bundled server, and a child holding the log's
-- lock until `release` exists (all undone after the test).
local function locked_log ()
  local dir = cli.home()
  finally(function () cli.rmdir(dir) end)
  local path, release = dir .. "/logs.db", dir .. "/release"
  local srv = devserver.start()
  finally(function () srv:stop() end)
  -- (the log made first: the holder needs the database to exist)
  assert(require("aigc.promptlog").open(path)):close()
  local holder = luachild.run(logdb.LOCK_HOLDER, { background = true, args = { path, release } })
  finally(function () assert(io.open(release, "w")):close(); holder:wait(30) end)
  holder:until_printed("locked", 60)
  return dir, path, release, srv, holder
end

describe("a client's prompt_log when the program ends without close()", function ()
  it("writes the rows the lock kept out, once the lock is free", function ()
    if not has_sqlite then pending("no lua-sql-sqlite3") return end
    local _, path, release, srv, holder = locked_log()
    local r = luachild.run(PROGRAM, { args = { srv.base_url, path, release, holder.stdout_path }, timeout = 120 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("kept 2\nexiting\n", r.stdout)   -- (both rows were kept while the lock was held)
    assert.equal("", r.stderr)                    -- (nothing reported lost, no finalizer's warning)
    assert.same({ "Echo: one", "Echo: two" }, logdb.prompts(path))
  end)

  -- (the log's finalizer waited for the lock the log's 10 s busy timeout: a
  -- bot dropping its client, or quitting, while another process held the
  -- lock froze 10.02 s, and the row was lost all the same)
  it("does not freeze while the lock is held: the rows are kept beside the database for its next open", function ()
    if not has_sqlite then pending("no lua-sql-sqlite3") return end
    local _, path, release, srv, holder = locked_log()
    local promptlog = require "aigc.promptlog"
    local t0 = socket.gettime()
    -- (one client dropped mid-run, one left to the end of the program; the
    -- key in a prompt, which nothing kept may hold)
    local r = luachild.run([[
local aigc = require "aigc"
local url, path = arg[1], arg[2]
local function ask (prompt)
  local client = aigc.client { base_url = url, model = "aigc-dev", prompt_log = path, api_key = "sk-kept-0123456789" }
  local done
  client:chat_async { messages = { { role = "user", content = prompt } },
                      on_done = function () done = true end, on_error = function (e) done = e end }
  while done == nil do client:step(0.05) end
  assert(done == true and #client._log_pending == 1)
  return client
end
local client = ask "Echo: dropped sk-kept-0123456789"
client = nil
local t0 = aigc.now()
collectgarbage(); collectgarbage()
io.stdout:write(string.format("%.1f\n", aigc.now() - t0))
_G.last = ask "Echo: at exit"
]], { args = { srv.base_url, path }, timeout = 60 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("", r.stderr)
    assert.is_true(tonumber(r.stdout) < 2, r.stdout)   -- (seconds the drop took: 10.0 before)
    assert.is_true(socket.gettime() - t0 < 5)   -- (the program's whole run, its end included: 20 s before)
    local text = cli.read(path .. "-kept")
    assert.equal(2, select(2, text:gsub("\n", "")))
    assert.is_nil(text:find("sk-kept-0123456789", 1, true))
    assert.equal("600", proc.mode(path .. "-kept"))
    assert.same({}, logdb.prompts(path))
    -- (an open while the lock is held keeps them; the next one, once it is free, writes them, once)
    local log = assert(promptlog.open(path))
    log:close()
    assert.is_not_nil(io.open(path .. "-kept", "rb"))
    assert(io.open(release, "w")):close()
    holder:until_printed("released", 60)
    log = assert(promptlog.open(path))
    local rows = log:list { n = 0 }
    log:close()
    assert.is_nil(io.open(path .. "-kept", "rb"))
    assert.same({ "Echo: dropped [redacted]", "Echo: at exit" }, logdb.prompts(path))
    assert.equal("ok", rows[1].status)
    assert.is_nil(assert(promptlog.open(path)):list { n = 0 }[3])
  end)

  it("a FIFO at the kept rows' file (LOG-kept) is no kept rows: the log opens at once (it waited for ever)", function ()
    if not has_sqlite then pending("no lua-sql-sqlite3") return end
    local dir = cli.home()
    finally(function () cli.rmdir(dir) end)
    local path = dir .. "/logs.db"
    assert(proc.execute("mkfifo " .. proc.quote(path .. "-kept")))
    local r = luachild.run([[
      local log = assert(require("aigc.promptlog").open(arg[1]))
      log:close()
      print("opened")
    ]], { args = { path }, timeout = 20 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("opened\n", r.stdout)
  end)
end)
