-- The recording proxy joined each piece it read to the bytes before it and
-- searched them all again: a request or a reply of several MB on one line
-- (a long prompt, its echo, an image's base64) cost time quadratic in its
-- size. Counted, not timed: the proxy runs under a Lua whose string search
-- functions add up the bytes they are given, which must stay a small
-- multiple of what passed through (the old proxy searched ~1 GB for 16 MB).

local aigc = require "aigc"
local scripted = require "scripted"
local luachild = require "luachild"
local cli = require "cli"
local proc = require "procutil"

local MB = 1024 * 1024

-- Runs the proxy script (arg[1]) with string.find/match/gmatch/gsub counting
-- the bytes they search; at exit, writes the total to arg[1] of the wrapper.
local COUNTING = [[
local out = table.remove(arg, 1)
local searched = 0
for _, name in ipairs { "find", "match", "gmatch", "gsub" } do
  local f = string[name]
  string[name] = function (s, ...) searched = searched + #s; return f(s, ...) end
end
local exit = os.exit
os.exit = function (...)
  local f = io.open(out .. ".part", "w")
  f:write(searched); f:close()
  os.rename(out .. ".part", out)
  return exit(...)
end
local script = table.remove(arg, 1)
arg[0] = script
dofile(script)
]]

-- Records both calls through the proxy, under the counting Lua.
local RECORD = [[
local aigc = require "aigc"
local base_url, path = arg[1], arg[2]
local long = string.rep("x", 8 * 1024 * 1024)
local c = aigc.client { base_url = base_url, api_key = "k", model = "m", max_retries = 0, timeout = 120,
                        cassette = { path = path, mode = "record" } }
local a = assert(c:chat { messages = { { role = "user", content = "Echo: " .. long } } })
local b = assert(c:chat { messages = { { role = "user", content = "long reply" } } })
c:close()
print(a.text, #b.text, b.text == long)
]]

describe("the cassette's recording proxy and one very long line", function ()
  it("records and replays an 8 MB prompt and an 8 MB reply, searching each byte a few times", function ()
    local dir = cli.home()
    finally(function () cli.rmdir(dir) end)
    local long = string.rep("x", 8 * MB)
    local srv = scripted.start { scripted.chat { content = "short" }, scripted.chat { content = long } }
    cli.write(dir .. "/counting.lua", COUNTING)
    cli.write(dir .. "/lua", "#!/bin/sh\nexec lua5.4 " .. proc.quote(dir .. "/counting.lua") .. " "
              .. proc.quote(dir .. "/searched") .. ' "$@"\n')
    assert(os.execute("chmod +x " .. proc.quote(dir .. "/lua")))
    local path = dir .. "/tape.jsonl"
    local r = luachild.run(RECORD, { args = { srv.base_url, path }, env = { AIGC_CASSETTE_LUA = dir .. "/lua" },
                                     timeout = 300 })
    srv.finish()
    assert.equal(0, r.status, r.stderr)
    assert.equal("short\t" .. 8 * MB .. "\ttrue\n", r.stdout)
    -- (the proxy writes its count as it exits, once the client closed it)
    local searched
    for _ = 1, 600 do
      searched = tonumber(proc.read_file(dir .. "/searched") or "")
      if searched then break end
      os.execute("sleep 0.1")
    end
    assert.is_number(searched)
    -- 16 MB went through: searched as a whole, a few times at most, not
    -- again at each piece read (the old proxy: over 1,000 MB).
    assert.is_true(searched < 4 * 16 * MB, "searched " .. searched .. " bytes")

    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = "k", model = "m", timeout = 120,
                            cassette = { path = path, mode = "replay", timing = false } }
    finally(function () c:close() end)
    local a = assert(c:chat { messages = { { role = "user", content = "Echo: " .. long } } })
    assert.equal("short", a.text)
    local b = assert(c:chat { messages = { { role = "user", content = "long reply" } } })
    assert.equal(#long, #b.text)
    assert.is_true(b.text == long)
    assert.is_truthy(proc.read_file(path):find('"raw":true', 1, true))   -- (the long reply: the proxy's bytes)
  end)
end)
