-- A client's prompt_log keeps in memory the rows that another process's
-- lock kept out (aigc.promptlog_pending), written at a later step or at
-- close(). A program that ended without close() lost them: nothing wrote
-- them at exit. The log's finalizer now does, once the lock is free.

local cli = require "cli"
local devserver = require "devserver"
local luachild = require "luachild"
local logdb = require "logdb"

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

describe("a client's prompt_log when the program ends without close()", function ()
  it("writes the rows the lock kept out, once the lock is free", function ()
    if not has_sqlite then pending("no lua-sql-sqlite3") return end
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
    local r = luachild.run(PROGRAM, { args = { srv.base_url, path, release, holder.stdout_path }, timeout = 120 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("kept 2\nexiting\n", r.stdout)   -- (both rows were kept while the lock was held)
    assert.equal("", r.stderr)                    -- (nothing reported lost, no finalizer's warning)
    assert.same({ "Echo: one", "Echo: two" }, logdb.prompts(path))
  end)
end)
