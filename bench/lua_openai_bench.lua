-- leafo/lua-openai, unmodified (a pinned commit, with its tableshape
-- dependency: ../shared/peers, see SOURCE.md there): the Lua client people
-- use today, doing the same work as floor.c through its public API
-- (`client:chat(messages, opts[, callback])`, socket.http + lua-cjson
-- underneath: a new connection per request).
--
--   lua5.4 bench/lua_openai_bench.lua seq    URL N EXPECT_FILE
--   lua5.4 bench/lua_openai_bench.lua stream URL N EXPECT_FILE   (a callback per chunk)
--
-- BENCH_PEERS: the peers folder (default ../shared/peers). Prints
-- "ok n=... wall=... cpu=... rss_kb=..." (CPU: os.clock()), or exits 3
-- saying why when the peers are absent (run.lua then skips the case).

local peers = os.getenv("BENCH_PEERS") or "../shared/peers"
local probe = io.open(peers .. "/lua-openai/openai/init.lua")
if not probe then
  io.stderr:write("lua-openai: ", peers, "/lua-openai is absent (see SOURCE.md): skipped\n")
  os.exit(3)
end
probe:close()
package.path = peers .. "/lua-openai/?.lua;" .. peers .. "/lua-openai/?/init.lua;"
  .. peers .. "/tableshape/?.lua;" .. peers .. "/tableshape/?/init.lua;" .. package.path

local openai = require "openai"
local socket = require "socket"

local mode, url, n, expect_file = arg[1], arg[2], tonumber(arg[3]), arg[4]
local f = assert(io.open(expect_file, "rb"))
local expect = f:read("a")
f:close()

local client = openai.new("sk-bench")
client.api_base = url

local function messages (i)
  return {
    { role = "system", content = "You are a helpful assistant." },
    { role = "user", content = "Say hello to request " .. i .. "." },
  }
end
local OPTS = { model = "gpt-4o-mini", temperature = 0.7, max_tokens = 128 }

local chunks = 0
local function seq (i)
  local status, res = client:chat(messages(i), OPTS)
  local choice = type(res) == "table" and res.choices and res.choices[1]
  if status ~= 200 or not choice or choice.message.content ~= expect then
    error("unexpected response: " .. tostring(status))
  end
end

local STREAM_OPTS = { model = "gpt-4o-mini", temperature = 0.7, max_tokens = 128, stream = true }
local function stream (i)
  local parts = {}
  local status = client:chat(messages(i), STREAM_OPTS, function (delta)
    chunks = chunks + 1
    parts[#parts + 1] = delta.content
  end)
  if status ~= 200 or table.concat(parts) ~= expect then error("unexpected stream: " .. tostring(status)) end
end

local one = assert(({ seq = seq, stream = stream })[mode], "mode: seq or stream")
for i = 1, (mode == "seq" and 20 or 5) do one(i) end
chunks = 0
local t0, c0 = socket.gettime(), os.clock()
for i = 1, n do one(i) end
local wall, cpu = socket.gettime() - t0, os.clock() - c0
local st = assert(io.open("/proc/self/status"))
local hwm = st:read("a"):match("VmHWM:%s*(%d+)")
st:close()
print(("ok n=%d wall=%.6f cpu=%.6f rss_kb=%s chunks=%d"):format(n, wall, cpu, hwm, chunks))
