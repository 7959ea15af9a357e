-- spec/support/cli.lua's terminals: a run killed before its tests closed
-- them left their tmux sessions (remain-on-exit) and their tmux server
-- for ever, with an aigc chat still running in some. The sessions of a run
-- now end when its process does.

local cli = require "cli"
local luachild = require "luachild"
local proc = require "procutil"
local socket = require "socket"

local describe_tty = cli.has_tmux() and describe or pending

describe_tty("a terminal its run never closed", function ()
  it("ends with the run's process", function ()
    local home = cli.home()
    finally(function () cli.rmdir(home) end)
    -- (a run that dies with a terminal open: no close, no after_each)
    local r = luachild.run(([[
      local cli = require "cli"
      local t = cli.terminal({ "--version" }, { home = %q })
      io.write(t.name, "\n", cli.TMUX, "\n")   -- (its run's own tmux server)
      os.exit(0)
    ]]):format(home), { lua = os.getenv("LUA") or "lua5.4" })
    assert.equal(0, r.status, r.stderr)
    local name, tmux = r.stdout:match("^(%S+)\n(tmux %-L [%w%-]+)\n$")
    assert.is_string(name, r.stdout)
    finally(function () proc.sh(tmux .. " kill-session -t " .. name .. " 2>/dev/null") end)
    local deadline = socket.gettime() + 20
    while proc.sh(tmux .. " has-session -t " .. name .. " 2>/dev/null")
          and socket.gettime() < deadline do
      socket.sleep(0.1)
    end
    assert.is_false(proc.sh(tmux .. " has-session -t " .. name .. " 2>/dev/null"),
                    "the session " .. name .. " outlived its run")
  end)
end)
