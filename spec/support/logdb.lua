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
