-- A key echoed inside a JSON string with some or all of its characters
-- \u-escaped: Gson writes '=' as "\u003d", some gateways escape every
-- character ("\u0073\u006b..."), others a few bytes only. Only the '/'
-- and .NET's escapes were searched, so such an echo stayed whole in
-- err.message, err.body, tostring(err), the log lines and a cassette. The
-- text is now searched JSON-unescaped too: any escaping of any character.
local aigc = require "aigc"
local cjson = require "cjson"
local b64 = require "b64"
local scripted = require "scripted"
local texts = require "texts"
local upstream = require "upstream"

local KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1w+Xy/Zq=="

local function every (s, fmt)   -- every character \u-escaped
  return (s:gsub(".", function (c) return string.format(fmt, c:byte()) end))
end

-- The forms a JSON writer may give the key in, each with no 12 bytes of
-- the key in a row left as they are.
local ESCAPED = {
  gson = (KEY:gsub("[=+]", function (c) return string.format("\\u%04x", c:byte()) end)):gsub("/", "\\/")
         :gsub("Ef6hIj9kLm2", function (p) return every(p:sub(1, 1), "\\u%04X") .. p:sub(2) end),
  all_lower = every(KEY, "\\u%04x"),
  all_upper = every(KEY, "\\u%04X"),
  some = (KEY:gsub("[A-Z]", function (c) return string.format("\\u%04X", c:byte()) end)),
  short_escapes = every(KEY:sub(1, 10), "\\u00%02x") .. KEY:sub(11):gsub("/", "\\/"),
  bearer64 = (b64("Bearer " .. KEY):gsub("/", "\\/"):gsub("[+=]", function (c)
    return string.format("\\u%04x", c:byte())
  end)),
}
-- Every character escaped, in a JSON text a gateway wrapped in a string
-- of its own (two backslashes before "u0073"), and once more (four): what
-- a cassette's raw bytes or a text body hold.
ESCAPED.wrapped = (ESCAPED.all_lower:gsub("\\", "\\\\"))
ESCAPED.wrapped_twice = (ESCAPED.wrapped:gsub("\\", "\\\\"))

local function names ()
  local list = {}
  for name in pairs(ESCAPED) do list[#list + 1] = name end
  table.sort(list)
  return list
end

-- Whether s holds 12 bytes in a row of the key, or of the inner
-- characters of its "Bearer" base64, once JSON-unescaped.
local function leaks (s)
  local plain = s:gsub("\\+u(%x%x%x%x)", function (h) return string.char(tonumber(h, 16) % 256) end)
                 :gsub("\\+(.)", "%1")
  return texts.holds_run(plain, { KEY, b64("Bearer " .. KEY):sub(11, -4) })
end

describe("a key echoed JSON-escaped", function ()
  it("engine:scrub finds any escaping of any character; the text around keeps its escapes", function ()
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = KEY }
    for _, name in ipairs(names()) do
      local text = 'line\\n{\\"key\\": \\"' .. ESCAPED[name] .. '\\"} caf\\u00e9'
      local out = c._engine:scrub(text)
      -- (compared, not printed: no form of the key in the test's output)
      if name == "bearer64" then   -- (the base64 characters other bytes decide stay)
        assert.is_truthy(out:match('^line\\n{\\"key\\": \\"[%w\\]*%[redacted%][%w\\]*\\"} caf\\u00e9$'), name)
      else
        assert.is_true(out == 'line\\n{\\"key\\": \\"[redacted]\\"} caf\\u00e9', name)
      end
      assert.is_false(leaks(out), name)
    end
    c:close()
  end)

  -- (a text cut at a limit -- a body kept to 64 KiB, a log line's 1 KiB --
  -- inside an escape: its start showed, before the cut escape)
  it("a key escaped and cut by a truncation, inside an escape or not: its start is redacted", function ()
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = KEY }
    for _, cut in ipairs { 6 * 10, 6 * 10 + 1, 6 * 10 + 2, 6 * 10 + 4, 6 * 10 + 5 } do
      local out = c._engine:scrub("seen: " .. every(KEY, "\\u%04x"):sub(1, cut))
      assert.is_true(out == "seen: [redacted]", "cut at " .. cut)
    end
    -- (its first 10 bytes as they are, then the next one's escape cut)
    assert.is_true(c._engine:scrub("seen: " .. KEY:sub(1, 10) .. "\\u00") == "seen: [redacted]")
    local srv = scripted.start { "e400 " .. ("x"):rep(65536 - 6 * 10 - 3) .. every(KEY, "\\u%04x") }
    local client = aigc.client { base_url = srv.base_url, api_key = KEY, max_retries = 0 }
    local res, err = client:chat { model = "m", messages = { { role = "user", content = "Hi" } } }
    client:close()
    srv.finish()
    assert.is_nil(res)
    assert.is_true(err.body == ("x"):rep(65536 - 6 * 10 - 3) .. "[redacted]")
    c:close()
  end)

  it("ordinary escaped text is not blanked", function ()
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = KEY }
    local text = 'a \\"quoted\\" \\u0041\\u0042\\u0043 line\\r\\n\\t caf\\u00e9 \\ud83d\\ude00 \\u12 \\x'
    assert.equal(text, c._engine:scrub(text))
    c:close()
  end)

  it("a gateway's JSON text in its error message: no form in err, tostring(err), the log lines", function ()
    local replies, list = {}, names()
    for i, name in ipairs(list) do   -- (the upstream's error, a JSON text, in the gateway's string)
      local inner = '{"error":{"message":"Invalid key ' .. ESCAPED[name] .. '"}}'
      replies[i] = "e400 " .. cjson.encode { error = { message = "upstream said: " .. inner, upstream = inner } }
    end
    replies[#replies + 1] = "e400 not json: " .. ESCAPED.gson   -- (a body kept as text)
    local srv = scripted.start(replies)
    local lines = {}
    local client = aigc.client { base_url = srv.base_url, api_key = KEY, max_retries = 0,
                                 log = function (level, msg) lines[#lines + 1] = level .. ": " .. msg end }
    for i = 1, #replies do
      local res, err = client:chat { model = "m", messages = { { role = "user", content = "Hi" } } }
      assert.is_nil(res)
      assert.equal(400, err.status)
      local name = list[i] or "text body"
      assert.is_false(leaks(texts.all(err)), name .. ": err")
      assert.is_false(leaks(tostring(err)), name .. ": tostring(err)")
      assert.is_truthy(err.message:find("[redacted]", 1, true), name)
    end
    client:close()
    srv.finish()
    assert.is_true(#lines > 0)
    assert.is_false(leaks(table.concat(lines, "\n")), "a log line")
  end)

  it("the recording proxy masks it in the cassette", function ()
    local live, err, tape = upstream.recorded([=[
      local key = buf:sub(1, h):match("\r\n[Aa]uthorization: Bearer ([^\r\n]*)")
      local some = key:gsub("[=+]", function (c) return string.format("\\u%04x", c:byte()) end)
      local every = key:gsub(".", function (c) return string.format("\\u%04X", c:byte()) end)
      local wrapped = every:gsub("\\", "\\\\")   -- (a gateway's string around that text)
      reply(s, "keys: " .. some .. " " .. every .. " " .. wrapped)
    ]=], { model = "m", api_key = KEY }, { messages = { { role = "user", content = "hi" } } }, finally)
    assert.is_nil(err and err.message)
    assert.is_true(leaks(live.text))   -- (the upstream did echo it: checked, not printed)
    assert.matches("keys: ", tape, 1, true)
    assert.is_false(leaks(tape), "the key is on the tape")
  end)
end)
