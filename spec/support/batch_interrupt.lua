--- `aigc run CASES --batch ...` stopped by Ctrl-C once its batch has reached
-- it (the server answered two polls): for the specs of what the run then
-- says. The bundled server `srv` and the home `home` are the caller's.
-- @usage local id, stderr = require("batch_interrupt").run(srv, home, { "--out", out })

local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"
local socket = require "socket"

local M = {}

--- Runs it, sends SIGINT, asserts exit 130; returns the batch's id and
-- what the run wrote on stderr.
-- @tparam table srv
-- @tparam string home (holds cases.jsonl)
-- @tparam[opt] table extra more arguments
-- @treturn string id
-- @treturn string stderr
function M.run (srv, home, extra)
  local args = { "run", home .. "/cases.jsonl", "--batch", "-q", "--no-log", "-m", "aigc-dev" }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  local err = home .. "/err.txt"
  local job = cli.background(args, { home = home, base_url = srv.base_url, stderr = err })
  local deadline = socket.gettime() + 30
  local id = devserver.batch_polled(srv, 2, deadline)   -- (two polls: the batch's id has reached the run)
  os.execute("kill -INT " .. job.pid)
  assert(job.wait_exit(deadline) == 130, "the run did not end with 130: " .. tostring(proc.read_file(err)))
  return id, proc.read_file(err)
end

-- (a LUA_INIT script: see M.hold_init)
local HOLD = [[
local require0 = require
function require (name)
  local m = require0(name)
  if name == "aigc.batch" and not m.held then
    local fn, which, marker = m[%q], %q, %q
    m.held = true
    local function hold (id)
      local f = assert(io.open(marker, "w")); f:write(id); f:close()
      -- (Lua code: Ctrl-C's "interrupted!" is raised here; SIGTERM, noted by the run, needs MARKER.go
      -- to go on -- held the whole 30 s, a loaded run missed its test's deadline)
      local deadline, go = os.time() + 30, marker .. ".go"
      while os.time() < deadline and not io.open(go) do end
    end
    m[which] = function (...)
      if which == "wait" then hold((select(2, ...))); return fn(...) end
      local b, err = fn(...)
      hold(b and b.id or "none")
      return b, err
    end
  end
  return m
end
]]

--- Writes at `path` a LUA_INIT script for `aigc run` (its own process):
-- aigc.batch's `which` is held 30 s (or until `marker`.go is there) in Lua
-- code, where a signal lands, with the batch's id written to `marker`
-- first -- "create": once the
-- server made the batch; "wait": before its first poll.
-- @tparam string path
-- @tparam string which "create" or "wait"
-- @tparam string marker
function M.hold_init (path, which, marker)
  cli.write(path, HOLD:format(which, which, marker))
end

--- The message of a run interrupted with batch `id` still at the server.
function M.message (id)
  return "aigc run: interrupted: batch " .. id .. " goes on at the server (run it again with --batch-id "
         .. id .. " to take its results; --batch --cancel --batch-id " .. id .. " cancels it)\n"
end

return M
