-- The decoder pushes the strings replies are made of (src/jsonlua.c's
-- known_strings: the keys of a chat completion, usage, ...) from a table
-- made once, instead of making each a Lua string again. What a script
-- gets must not change: every known string, and every string that is
-- almost one (a byte changed, one more or one less, another case, a NUL
-- inside), as a key and as a value, decodes to exactly its bytes; random
-- documents built from them decode as lua-cjson decodes them.
local aigc = require "aigc"
local cjson = require "cjson"

-- The list, read from the C source so that the spec follows it.
local function known_strings ()
  local f = assert(io.open("src/jsonlua.c", "rb"))
  local src = f:read("*a")
  f:close()
  local body = assert(src:match("known_strings%[%] = (%b{})"), "known_strings not found in src/jsonlua.c")
  local list = {}
  for s in body:gsub("/%*.-%*/", ""):gmatch('"([^"]*)"') do list[#list + 1] = s end
  return list
end

local KNOWN = known_strings()

-- Strings that are almost a known one: the cases a lookup could confuse.
local function near_misses (s)
  local out = {
    s .. "x", "x" .. s, s:sub(1, -2), s:sub(2), s:upper(),
    s:sub(1, -2) .. string.char((s:byte(-1) + 1) % 128),
    string.char((s:byte(1) + 1) % 128) .. s:sub(2),
    s:sub(1, -2) .. "\0",
  }
  local mid = math.floor(#s / 2) + 1
  out[#out + 1] = s:sub(1, mid - 1) .. (s:sub(mid, mid) == "_" and "-" or "_") .. s:sub(mid + 1)
  return out
end

-- JSON text of a string (what cjson writes, \u0000 for a NUL).
local function quote (s) return cjson.encode(s) end

local function same (a, b, path)
  path = path or "value"
  if type(a) ~= type(b) then return false, path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) ~= "table" then
    if a == b then return true end
    return false, ("%s: %q vs %q"):format(path, tostring(a), tostring(b))
  end
  for k, v in pairs(a) do
    local ok, why = same(v, b[k], path .. "." .. tostring(k))
    if not ok then return false, why end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) .. ": missing" end
  end
  return true
end

describe("the decoder's known strings", function ()
  it("are read from src/jsonlua.c (the spec checks the real list)", function ()
    assert.is_true(#KNOWN >= 50, "found only " .. #KNOWN)
    local seen = {}
    for _, s in ipairs(KNOWN) do
      assert.is_nil(seen[s], "listed twice: " .. s)
      seen[s] = true
      assert.is_true(#s >= 2 and #s <= 26, "length out of the C bounds: " .. s)
    end
    assert.is_true(seen.choices and seen.finish_reason and seen.prompt_tokens and seen.assistant)
  end)

  it("decode to their own bytes as keys and as values", function ()
    for _, s in ipairs(KNOWN) do
      local t = assert(aigc.json.decode("{" .. quote(s) .. ":" .. quote(s) .. "}"))
      local n = 0
      for k, v in pairs(t) do
        n = n + 1
        assert.equal(s, k)
        assert.equal(s, v)
      end
      assert.equal(1, n)
      assert.same({ s }, aigc.json.decode("[" .. quote(s) .. "]"))
    end
  end)

  it("do not capture strings that are almost one of them", function ()
    for _, s in ipairs(KNOWN) do
      for _, m in ipairs(near_misses(s)) do
        local t = assert(aigc.json.decode("{" .. quote(m) .. ":[" .. quote(m) .. "]}"))
        local k, v = next(t)
        assert.equal(m, k)
        assert.equal(m, v[1])
        assert.is_nil(next(t, k))
      end
    end
  end)

  it("are found when written with escapes", function ()
    assert.same({ role = "assistant" }, aigc.json.decode('{"\\u0072ole":"assist\\u0061nt"}'))
    assert.same({ ["role\0"] = "stop" }, aigc.json.decode('{"role\\u0000":"st\\u006fp"}'))
  end)

  it("decode random documents as lua-cjson does (keys, values, nesting, duplicates)", function ()
    local pool = {}
    for _, s in ipairs(KNOWN) do
      pool[#pool + 1] = s
      for _, m in ipairs(near_misses(s)) do pool[#pool + 1] = m end
    end
    local seed = 20261203
    local function rand (n)   -- a small LCG: the same documents on every Lua
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n + 1
    end
    local function gen (depth)
      local r = rand(10)
      if depth > 3 or r <= 4 then
        local s = rand(6)
        if s == 1 then return tostring(rand(1000)) end
        if s == 2 then return "null" end
        return quote(pool[rand(#pool)])
      elseif r <= 7 then
        local parts = {}
        for i = 1, rand(6) - 1 do
          -- (a repeated key now and then: the last one wins in both)
          local key = (i > 1 and rand(5) == 1) and pool[rand(3)] or pool[rand(#pool)]
          parts[#parts + 1] = quote(key) .. ":" .. gen(depth + 1)
        end
        return "{" .. table.concat(parts, ",") .. "}"
      else
        local parts = {}
        for _ = 1, rand(5) - 1 do parts[#parts + 1] = gen(depth + 1) end
        return "[" .. table.concat(parts, ",") .. "]"
      end
    end
    for _ = 1, 3000 do
      local text = "{" .. quote(pool[rand(#pool)]) .. ":" .. gen(0) .. "}"
      local ok, why = same(assert(aigc.json.decode(text)), cjson.decode(text))
      if not ok then error(why .. " in " .. text) end
    end
  end)

  it("are made again when the registry's table was changed through debug.getregistry", function ()
    local reg = debug.getregistry()
    local function tamper (how)
      for k, v in pairs(reg) do
        if type(v) == "table" and v[1] == "id" and v[2] == "object" and v[#KNOWN] == KNOWN[#KNOWN] then how(k, v) end
      end
    end
    tamper(function (_, t) t[#KNOWN + 1] = "not the index" end)
    assert.same({ id = "x", choices = {} }, aigc.json.decode('{"id":"x","choices":{}}'))
    tamper(function (_, t) t[#KNOWN + 1] = setmetatable({}, {}) end)
    assert.same({ role = "assistant" }, aigc.json.decode('{"role":"assistant"}'))
    tamper(function (_, t) t[#KNOWN + 1] = io.stdout end)   -- a userdata, of another size
    for _ = 1, 20 do
      assert.same({ role = "assistant", content = "hi", finish_reason = "stop" },
                  aigc.json.decode('{"role":"assistant","content":"hi","finish_reason":"stop"}'))
    end
    tamper(function (k) reg[k] = false end)
    assert.same({ model = "m" }, aigc.json.decode('{"model":"m"}'))
  end)

  it("survive a full collection between replies (the table is held by the registry)", function ()
    collectgarbage()
    collectgarbage()
    local t = assert(aigc.json.decode('{"choices":[{"message":{"role":"assistant","content":"hi"}}]}'))
    assert.equal("assistant", t.choices[1].message.role)
    assert.equal("hi", t.choices[1].message.content)
  end)
end)
