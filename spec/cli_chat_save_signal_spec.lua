-- `aigc chat`'s /save and a SIGTERM or SIGHUP that comes while the file
-- is written: the save ends whole (no FILE.part left), then the session
-- ends by the signal. A real process, stopped (SIGSTOP) as soon as its
-- FILE.part appears, so that the signal lands inside the write.

local cli = require "cli"
local proc = require "procutil"
local socket = require "socket"

local has_luv = pcall(require, "luv")

describe("aigc chat /save", function ()
  local home
  cli.fixture(_ENV, function (_, h) home = h end)

  local function saved_under (signal, code)
    local path = home .. "/saved.json"
    local big = string.rep("lorem ipsum ", 3 * 1024 * 1024) .. "end"   -- (36 MB: a write that takes a while)
    cli.write(home .. "/in.txt", "/system " .. big .. "\n/save " .. path .. "\n")
    local job = cli.background({ "chat", "--no-log" }, { home = home, stdin_path = home .. "/in.txt" })
    finally(function () os.execute("kill -9 " .. job.pid .. " 2>/dev/null") end)
    local deadline = socket.gettime() + 60
    while not proc.exists(path .. ".part") do
      assert.is_true(socket.gettime() < deadline, "no " .. path .. ".part")
      socket.sleep(0.001)
    end
    assert.is_true(proc.execute("kill -STOP " .. job.pid))
    -- (stopped inside the write: else this test would test nothing)
    assert.is_nil(io.open(path, "rb"), "the save was over before the process stopped")
    assert.is_true(proc.execute("kill -" .. signal .. " " .. job.pid .. " && kill -CONT " .. job.pid))
    assert.equal(code, job.wait_exit(socket.gettime() + 60))
    assert.is_nil(io.open(path .. ".part", "rb"))
    local text = assert(cli.read(path))
    assert.equal(#big, #assert(text:match('"content":"(lorem ipsum [^"]*end)"')))
  end

  local it_luv = has_luv and it or pending
  it_luv("a SIGTERM inside the write: the file is saved whole, no FILE.part, exit 143", function ()
    saved_under("TERM", 143)
  end)
  it_luv("a SIGHUP (the terminal closed) alike: exit 129", function ()
    saved_under("HUP", 129)
  end)
end)
