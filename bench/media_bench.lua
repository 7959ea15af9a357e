-- Issue 15's C helpers against the same work in plain Lua, side by side in
-- one run (ratios; a shared machine makes absolute figures meaningless):
--   1. an embedding reply's vector: base64 of 1536 little-endian float32
--      -> a Lua array (core.media.f32 vs a Lua base64 decoder + string.unpack);
--   2. top-k (k = 5) cosine search over N stored vectors of 256 floats
--      (aigc.vec index:topk vs a Lua loop over normalized arrays);
--   3. the whole store ranked (k = N: index:topk vs the Lua scores and a
--      table.sort): a large k once cost k moves a row, quadratic.
--
--   lua5.4 bench/media_bench.lua [N]      (N vectors for 2; default 5000)
-- Not run by `make bench` (yet): run it by hand from the repo root after `make`.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "./?.so;" .. package.cpath
local aigc = require "aigc"
local media, vec = aigc.media, aigc.vec
local clock = os.clock
local N = tonumber(arg[1]) or 5000

-- Best of 5 rounds of fn() repeated `reps` times: seconds per call.
local function measure (reps, fn)
  local best = math.huge
  for _ = 1, 5 do
    local t = clock()
    for _ = 1, reps do fn() end
    best = math.min(best, (clock() - t) / reps)
  end
  return best
end

-- 1. base64 float32 ------------------------------------------------------
local floats = {}
math.randomseed(15)
for i = 1, 1536 do floats[i] = (math.random() - 0.5) * 0.1 end
local raw = string.pack("<" .. string.rep("f", #floats), table.unpack(floats))
local ALPHA = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function encode (s)
  return (s:gsub("..?.?", function (c)
    local a, b, d = c:byte(1, 3)
    local v = a * 65536 + (b or 0) * 256 + (d or 0)
    local out = {}
    for k = 1, 4 do
      local idx = math.floor(v / 64 ^ (4 - k)) % 64
      out[k] = ALPHA:sub(idx + 1, idx + 1)
    end
    if not b then out[3], out[4] = "=", "=" elseif not d then out[4] = "=" end
    return table.concat(out)
  end))
end
local b64 = encode(raw)
local VAL = {}
for i = 1, 64 do VAL[ALPHA:byte(i)] = i - 1 end
local function lua_f32 (s)
  local bytes, n = {}, 0
  for i = 1, #s - 3, 4 do
    local a, b, c, d = s:byte(i, i + 3)
    local v = VAL[a] * 262144 + VAL[b] * 4096 + (VAL[c] or 0) * 64 + (VAL[d] or 0)
    bytes[n + 1] = string.char(v // 65536, (v // 256) % 256, v % 256)
    n = n + 1
  end
  local bin = table.concat(bytes):sub(1, #s // 4 * 3 - (s:sub(-2) == "==" and 2 or s:sub(-1) == "=" and 1 or 0))
  local out = {}
  for i = 1, #bin // 4 do out[i] = string.unpack("<f", bin, 4 * i - 3) end
  return out
end
assert(lua_f32(b64)[7] == media.f32(b64, "base64")[7])
local t_c = measure(200, function () return media.f32(b64, "base64") end)
local t_lua = measure(20, function () return lua_f32(b64) end)
print(string.format("embedding 1536 floats from base64: C %.1f us, Lua %.1f us: C is %.1fx faster",
                    t_c * 1e6, t_lua * 1e6, t_lua / t_c))

-- 2. top-k -----------------------------------------------------------------
local DIM, K = 256, 5
local index, rows = vec.index(), {}
local function normalized (v)
  local s = 0
  for i = 1, #v do s = s + v[i] * v[i] end
  s = math.sqrt(s)
  local out = {}
  for i = 1, #v do out[i] = v[i] / s end
  return out
end
for r = 1, N do
  local v = {}
  for i = 1, DIM do v[i] = math.random() - 0.5 end
  index:add(v)
  rows[r] = normalized(v)
end
local q = {}
for i = 1, DIM do q[i] = math.random() - 0.5 end
local qn = normalized(q)
local function lua_topk ()
  local best, scores = {}, {}
  for r = 1, N do
    local row, s = rows[r], 0
    for i = 1, DIM do s = s + row[i] * qn[i] end
    if #best < K or s > scores[#best] then
      local j = #best < K and #best + 1 or K
      while j > 1 and s > scores[j - 1] do best[j], scores[j] = best[j - 1], scores[j - 1]; j = j - 1 end
      best[j], scores[j] = r, s
    end
  end
  return best, scores
end
local cb = index:topk(q, K)
local lb = lua_topk()
for i = 1, K do assert(cb[i] == lb[i], "C and Lua disagree on the top-k") end
t_c = measure(20, function () return index:topk(q, K) end)
t_lua = measure(3, lua_topk)
print(string.format("top-%d of %d vectors x %d floats: C %.2f ms, Lua %.2f ms: C is %.1fx faster",
                    K, N, DIM, t_c * 1e3, t_lua * 1e3, t_lua / t_c))

-- 3. The whole store ranked.
local function lua_rank_all ()
  local order, scores = {}, {}
  for r = 1, N do
    local row, s = rows[r], 0
    for i = 1, DIM do s = s + row[i] * qn[i] end
    order[r], scores[r] = r, s
  end
  table.sort(order, function (a, b)
    if scores[a] ~= scores[b] then return scores[a] > scores[b] end
    return a < b
  end)
  return order
end
local ca, la = index:topk(q, N), lua_rank_all()
local agree = 0
for i = 1, N do if ca[i] == la[i] then agree = agree + 1 end end
-- (float32 against double scores: near-ties may swap; most places agree)
assert(agree > N * 0.9, "C and Lua disagree on the ranking")
t_c = measure(3, function () return index:topk(q, N) end)
t_lua = measure(3, lua_rank_all)
print(string.format("all %d vectors ranked (k = %d): C %.2f ms, Lua %.2f ms: C is %.1fx faster",
                    N, N, t_c * 1e3, t_lua * 1e3, t_lua / t_c))
