-- `aigc run -` with its cases typed at a terminal: Ctrl-C while they were
-- read did nothing (the run's own Ctrl-C handler, made before the cases
-- were read, only noted it, and the read went on) until Ctrl-D ended the
-- input. The handler is now made once they are read: Ctrl-C stops the
-- read at once on Lua 5.4 (on LuaJIT and 5.1-5.3 the read goes on to the
-- end of the input, then the run stops, "interrupted").

local cli = require "cli"
local proc = require "procutil"

local describe_tty = cli.has_tmux() and describe or pending

-- The process whose command line holds bin/aigc: the pane's, or a child of it.
local function aigc_pid (pane_pid)
  local queue = { pane_pid }
  while #queue > 0 do
    local pid = table.remove(queue, 1)
    local cmd = proc.read_file("/proc/" .. pid .. "/cmdline") or ""
    if cmd:find("bin/aigc", 1, true) and not cmd:find("^env%z") then return pid end
    local kids = proc.read_file("/proc/" .. pid .. "/task/" .. pid .. "/children") or ""
    for kid in kids:gmatch("%d+") do queue[#queue + 1] = tonumber(kid) end
  end
end

-- Whether the process has the terminal open more than as 0, 1 and 2: it
-- opened /dev/stdin to read the cases.
local function reads_terminal (pid)
  local ok, out = proc.sh("ls -l /proc/" .. pid .. "/fd 2>/dev/null | grep -c /dev/pts/")
  return ok and tonumber(out:match("%d+")) >= 4
end

describe_tty("aigc run - reading cases typed at a terminal", function ()
  local srv, home, term
  cli.fixture(_ENV, function (s, h) srv, home = s, h end,
              { after_each = function () if term then term:close(); term = nil end end })

  it("Ctrl-C ends it: exit 130, nothing sent (it read on until Ctrl-D)", function ()
    -- (5.4's interpreter takes SIGINT without SA_RESTART, so its read ends
    -- at Ctrl-C; LuaJIT's and 5.1-5.3's restart it: Ctrl-C is heard after Ctrl-D)
    if not cli.LUA:find("5%.4") then pending("the read restarts after SIGINT on " .. cli.LUA) return end
    term = cli.terminal({ "run", "--no-log", "-" }, { home = home, base_url = srv.base_url })
    local pid
    cli.wait_until(function () pid = pid or aigc_pid(term.pid); return pid ~= nil and reads_terminal(pid) end,
                   "aigc run to read the terminal", 20, term)
    term:type('{"prompt": "Hi"}')
    term:keys("Enter")
    term:wait_for('{"prompt": "Hi"}', 10, true)
    term:keys("C-c")
    cli.wait_until(function () return (term:dead()) end, "aigc run to end", 10, term)
    -- (tmux may take a while to tell the status; when it has, it is 130)
    local _, code = term:dead()
    if code then assert.equal(130, code, term:screen()) end
    assert.matches("aigc: interrupted", term:screen(), 1, true)
    assert.equal(0, #srv:requests())
  end)
end)
