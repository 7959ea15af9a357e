-- The least a Lua client costs per request: what the Lua interpreter
-- itself pays for the benchmark's work, beside floor.c (the same work in
-- C) and aigc. Both modes send the request through bench/lua_bound_core.c (a
-- reused easy handle, the body in and out as strings: libcurl's part is
-- floor.c's).
--
--   lua5.4 bench/lua_bound.lua cjson URL N EXPECT   a hand-rolled client:
--          cjson.encode of the params table, cjson.decode of the reply
--   lua5.4 bench/lua_bound.lua bound URL N EXPECT   the bound: the body
--          made by string.format from the params' fields (no escaping, no
--          checks), the reply's tables made without parsing (the canned
--          reply is the same bytes every time: its 8 tables and 4 fresh
--          strings are cut from it at offsets found once)
--   lua5.4 bench/lua_bound.lua bound URL N EXPECT K   the bound with K in
--          flight: floor.c's curl-multi loop, calling Lua for each body
--          and each reply (after 2K warm-up requests, as floor.c)
--   BENCH_LUA_BOUND='build/bench/jit/?.so' luajit bench/lua_bound.lua ...
--
-- No Lua module that returns the reply as tables can cost less than
-- `bound`: it makes the same Lua objects (the params table is the
-- caller's in every client) and nothing else. Prints "ok n=... wall=...
-- cpu=... rss_kb=..." like floor.c (CPU: os.clock(), the timed part).
-- Runs on Lua 5.1-5.4 and LuaJIT.

package.cpath = (os.getenv("BENCH_LUA_BOUND") or "build/bench/?.so") .. ";" .. package.cpath
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local bound = require "lua_bound_core"
local cjson = require "cjson"
local socket = require "socket"

local mode, url, n, expect_file, k = arg[1], arg[2], tonumber(arg[3]), arg[4], tonumber(arg[5])
assert(mode == "cjson" or mode == "bound", "mode: cjson or bound")
local f = assert(io.open(expect_file, "rb"))
local expect = f:read("*a")
f:close()
local WARMUP = 50

local format, concat, sub, find = string.format, table.concat, string.sub, string.find

-- The request every client sends.
local params = require "request_params"

local encode, decode = cjson.encode, cjson.decode

if mode == "bound" then
  encode = function (p)
    local parts = {}
    for j, m in ipairs(p.messages) do parts[j] = format('{"role":"%s","content":"%s"}', m.role, m.content) end
    return format('{"model":"%s","messages":[%s],"temperature":%s,"max_tokens":%d}',
                  p.model, concat(parts, ","), tostring(p.temperature), p.max_tokens)
  end
  -- The offsets of the four values a decoder must make fresh strings of
  -- (the others are numbers, or strings every reply shares: interned once).
  local size, at
  local function span (body, before, after)
    local _, last = find(body, before, 1, true)
    assert(last, "the canned reply has no " .. before)
    local close = assert(find(body, after, last + 1, true), "the canned reply is cut short")
    return { last + 1, close - 1 }
  end
  decode = function (body)
    if not size then
      size = #body
      at = { id = span(body, '"id":"', '"'), model = span(body, '"model":"', '"'),
             content = span(body, '"content":"', '"'), fp = span(body, '"system_fingerprint":"', '"') }
    end
    assert(#body == size, "the canned reply changed")
    local id, model, content, fp = at.id, at.model, at.content, at.fp
    return {
      id = sub(body, id[1], id[2]), object = "chat.completion", created = 1741570283,
      model = sub(body, model[1], model[2]),
      choices = { { index = 0, message = { role = "assistant", content = sub(body, content[1], content[2]),
                                           refusal = cjson.null, annotations = {} },
                    logprobs = cjson.null, finish_reason = "stop" } },
      usage = { prompt_tokens = 28, completion_tokens = 52, total_tokens = 80,
                prompt_tokens_details = { cached_tokens = 0, audio_tokens = 0 },
                completion_tokens_details = { reasoning_tokens = 0, audio_tokens = 0 } },
      system_fingerprint = sub(body, fp[1], fp[2]),
    }
  end
end

local function report (wall, cpu)
  local st = assert(io.open("/proc/self/status"))
  local hwm = st:read("*a"):match("VmHWM:%s*(%d+)")
  st:close()
  print(("ok n=%d wall=%.6f cpu=%.6f rss_kb=%s"):format(n, wall, cpu, hwm))
end

local function check (res)
  if res.choices[1].message.content ~= expect then error("unexpected response content") end
end

if k then
  local warm, done, t0, c0 = 2 * k, 0, nil, nil
  bound.multi(url .. "/chat/completions", n + warm, k,
    function (i) return encode(params(i)) end,
    function (body)
      check(decode(body))
      done = done + 1
      if done == warm then t0, c0 = socket.gettime(), os.clock() end
    end)
  report(socket.gettime() - t0, os.clock() - c0)
  return
end

local h = bound.open(url .. "/chat/completions")
local function one (i)
  check(decode(bound.post(h, encode(params(i)))))
end

for i = 1, WARMUP do one(i) end
local t0, c0 = socket.gettime(), os.clock()
for i = 1, n do one(i) end
report(socket.gettime() - t0, os.clock() - c0)
