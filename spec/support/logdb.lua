--- A prompt log of its own for each test of the promptlog specs
-- (promptlog_blobs_spec, promptlog_prompt_parts_spec): a fresh directory
-- holding logs.db, opened; and the messages they log.
--
-- @usage
-- local dir, path, log
-- before_each(function () dir, path, log = logdb.open() end)
-- after_each(function () logdb.close(dir, log) end)

local cli = require "cli"
local promptlog = require "aigc.promptlog"

local M = {}

--- A child process's script (luachild.run, args `path`, `release`) that
-- holds the log's write lock (BEGIN EXCLUSIVE) from when it prints
-- "locked" until the file `release` exists (at most ~2 minutes, so that a
-- test that never releases it still ends), then commits and prints
-- "released" (promptlog_locked_spec, promptlog_exit_spec).
M.LOCK_HOLDER = [[
local path, release = arg[1], arg[2]
local driver = require("luasql.sqlite3").sqlite3()
local con = assert(driver:connect(path))
local c = con:execute("PRAGMA busy_timeout = 60000")
if type(c) ~= "number" and c then c:close() end
assert(con:execute("BEGIN EXCLUSIVE"))
io.stdout:write("locked\n"); io.stdout:flush()
for _ = 1, 6000 do
  local f = io.open(release, "rb")
  if f then f:close(); break end
  os.execute("sleep 0.02")
end
assert(con:execute("COMMIT"))
io.stdout:write("released\n"); io.stdout:flush()
con:close(); driver:close()
]]

--- The prompts of the log's rows at `path`, oldest first, read by a
-- connection of the caller's own (in WAL mode, reading needs no lock a
-- LOCK_HOLDER has).
function M.prompts (path)
  local driver = require("luasql.sqlite3").sqlite3()
  local con = assert(driver:connect(path))
  local cur = assert(con:execute("SELECT id, prompt FROM responses ORDER BY id"))
  local out = {}
  local row = cur:fetch({}, "a")
  while row do
    out[#out + 1] = row.prompt
    row = cur:fetch({}, "a")
  end
  cur:close(); con:close(); driver:close()
  return out
end

--- A fresh directory (cli.home), the path of logs.db in it, and that log opened.
function M.open ()
  local dir = cli.home()
  local path = dir .. "/logs.db"
  local log, err = promptlog.open(path)
  if not log then cli.rmdir(dir) end
  return dir, path, assert(log, err)
end

--- Closes `log` (if the test left one open) and removes `dir`.
function M.close (dir, log)
  if log then log:close() end
  cli.rmdir(dir)
end

--- A user message of `text` and an image at `url`.
function M.image_message (text, url)
  return { role = "user",
           content = { { type = "text", text = text }, { type = "image_url", image_url = { url = url } } } }
end

return M
