-- A short key (4 to 7 bytes with a letter and a digit: a local server's
-- "sk-1") echoed in hex or base64: a gateway dumping the header it refused
-- ("736b2d31"), the base64 of the key or of its "Bearer <key>" header
-- ("c2stMQ==", "QmVhcmVyIHNrLTE="). The short keys were searched only as
-- themselves (whole, as a word): these forms stayed in err.message,
-- err.body, tostring(err), the log lines and a cassette, and decode to the
-- key at a glance.
local aigc = require "aigc"
local b64 = require "b64"
local echoed = require "echoed"
local texts = require "texts"

local function hex (s) return (s:gsub(".", function (c) return string.format("%02x", c:byte()) end)) end

local function forms (key)
  return { hex = hex(key), hex_upper = hex(key):upper(), b64 = b64(key), b64_bare = (b64(key):gsub("=+$", "")),
           bearer = b64("Bearer " .. key), bearer_bare = (b64("Bearer " .. key):gsub("=+$", "")) }
end

local KEYS = { "sk-1", "key42", "sk-a1b2" }   -- (4 to 7 bytes: 8 or more are searched in runs, forms and all)

-- Whether s holds the key or one of its forms as a word (case ignored).
local function leaks (s, key)
  s = s:lower()
  for _, f in pairs(forms(key)) do
    local bare = f:gsub("=+$", ""):lower()
    for at, stop in s:gmatch("()" .. bare:gsub("%p", "%%%0") .. "()") do
      if not s:sub(at - 1, at - 1):find("%w") and not s:sub(stop, stop):find("%w") then return true end
    end
  end
  return texts.contains(s, key:lower())
end

local names = echoed.names

describe("a short key in hex or base64", function ()
  it("the forms are real: each leaks by the test's own measure", function ()
    for _, key in ipairs(KEYS) do
      local f = forms(key)
      for _, name in ipairs(names(f)) do
        assert.is_true(leaks("x " .. f[name] .. " y", key), key .. " " .. name)
        assert.is_false(texts.contains(f[name], key), key .. " " .. name)
      end
    end
  end)

  it("engine:scrub redacts each as a word, the text around kept", function ()
    for _, key in ipairs(KEYS) do
      local c, f = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = key }, forms(key)
      for _, name in ipairs(names(f)) do
        local out = c._engine:scrub("seen: " .. f[name] .. ". ok")
        assert.equal("seen: [redacted]. ok", out, key .. " " .. name)
      end
      -- (inside a longer word, hex or base64: ordinary text, kept)
      local text = "task-1 x" .. hex(key) .. " " .. hex(key) .. "0 " .. b64(key):gsub("=", "") .. "Q"
      assert.equal(text, c._engine:scrub(text), key)
      c:close()
    end
  end)

  it("a server's error echoing them: not in err, tostring(err), the log lines", function ()
    for _, key in ipairs(KEYS) do
      local f, cases = forms(key), {}
      for i, name in ipairs(names(f)) do cases[i] = { name, "Invalid Authorization (" .. f[name] .. ")" } end
      assert.same({}, echoed.server_errors(key, cases, function (s) return leaks(s, key) end), key)
    end
  end)

  it("the recording proxy masks them in the cassette", function ()
    for _, key in ipairs(KEYS) do
      local f, list = forms(key), {}
      for _, name in ipairs(names(f)) do list[#list + 1] = f[name] end
      assert.same({}, echoed.on_tape(key, list, function (s) return leaks(s, key) end, finally), key)
    end
  end)
end)
