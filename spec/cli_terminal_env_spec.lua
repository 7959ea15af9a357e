-- spec/support/cli.lua's terminals run on a tmux server, and a pane gets
-- that server's environment: the one of the process that started it. The
-- server was one for every busted run on the machine (`tmux -L aigc-spec`:
-- the lanes of `make test` side by side, other checkouts), so a terminal's
-- aigc ran in the environment of whichever run came first -- its locale,
-- HOME, TMPDIR, CI variables, sanitizer options. (A run under LANG=C and a
-- read-only HOME started it; a readline test of a run beside it, in
-- C.UTF-8, then failed.) A run's terminals now have its own environment.
local cli = require "cli"
local luachild = require "luachild"
local proc = require "procutil"
local socket = require "socket"

local describe_tty = cli.has_tmux() and describe or pending

-- The value of `name` in the environment of the process `pid`
-- (/proc/PID/environ, read until the process is there), or "-" without it.
local ENV_OF = [[
  local function env_of (pid, name)
    local s
    for _ = 1, 200 do
      local f = io.open("/proc/" .. pid .. "/environ", "rb")
      s = f and f:read("*a")
      if f then f:close() end
      if s and s ~= "" then break end
      require("socket").sleep(0.05)
    end
    assert(s and s ~= "", "no environment for the pane's process " .. pid)
    local i = 1
    while i <= #s do
      local j = s:find("\0", i, true) or #s + 1
      local k, v = s:sub(i, j - 1):match("^([^=]*)=(.*)$")
      if k == name then return v end
      i = j + 1
    end
    return "-"
  end
]]
local env_of = assert((rawget(_G, "loadstring") or load)(ENV_OF .. " return env_of"))()

describe_tty("a terminal of spec/support/cli.lua", function ()
  it("has its run's environment, not that of the run with a terminal open before it", function ()
    local home = cli.home()
    local mark = ("mark%d_%d"):format(os.time(), math.random(1e9))
    local ready, done = os.tmpname(), os.tmpname()
    os.remove(ready); os.remove(done)
    finally(function () cli.rmdir(home); os.remove(ready); os.remove(done) end)
    -- A run beside this one, its environment with AIGC_SPEC_PANE_MARK in
    -- it: its terminal stays open until this test's is read.
    local child = luachild.run(ENV_OF .. ([[
      local cli = require "cli"
      local socket = require "socket"
      local t = cli.terminal({ "chat" }, { home = %q, base_url = "http://127.0.0.1:9/v1" })
      local f = assert(io.open(%q .. ".part", "wb"))
      f:write(env_of(t.pid, "AIGC_SPEC_PANE_MARK"))
      f:close()
      assert(os.rename(%q .. ".part", %q))
      local deadline = socket.gettime() + 120   -- (a hang's bound)
      while not io.open(%q, "rb") and socket.gettime() < deadline do socket.sleep(0.05) end
      t:close()
    ]]):format(home, ready, ready, ready, done), { background = true, env = { AIGC_SPEC_PANE_MARK = mark } })
    local deadline = socket.gettime() + 120   -- (a hang's bound)
    while not proc.read_file(ready) and proc.alive(child.pid) and socket.gettime() < deadline do
      socket.sleep(0.05)
    end
    local t = cli.terminal({ "chat" }, { home = home, base_url = "http://127.0.0.1:9/v1" })
    local own = env_of(t.pid, "AIGC_SPEC_PANE_MARK")
    t:close()
    cli.write(done, "done\n")
    local r = child:wait(120)
    assert.equal(0, r.status, r.stderr)
    assert.equal(mark, proc.read_file(ready), "the other run's terminal lacks its environment")
    assert.equal("-", own, "this run's terminal has the other run's environment")
  end)
end)
