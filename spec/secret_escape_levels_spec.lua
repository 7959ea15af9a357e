-- A key in escapes nested deeper than the redaction decoded: percent-
-- encoded three times (a URL in a URL in a URL's query: "%25252F"), the
-- HTML of a percent-encoded key, an HTML page quoting HTML ("&amp;#x73;").
-- The search decoded one level of these (JSON's doubled backslashes
-- aside), so a key whose reserved characters cut it in pieces shorter than
-- 12 bytes, or a key every byte of which was escaped, stayed readable in
-- err.message, err.body, tostring(err), the log lines and a cassette.
local aigc = require "aigc"
local cjson = require "cjson"
local scripted = require "scripted"
local texts = require "texts"
local upstream = require "upstream"

-- (its '/', '+', '=' cut it in pieces of 10 bytes)
local KEY = "Ab3dEf6hIj/kLm2nOp5q+Rs8tUv1w=Xy"

local function pct (s, all)   -- percent-encoded: every byte, or all but the unreserved
  return (s:gsub(all and "." or "[^%w%-._~]", function (c) return string.format("%%%02X", c:byte()) end))
end

local function again (s) return (s:gsub("%%", "%%25")) end

local function html (s) return (s:gsub(".", function (c) return string.format("&#x%x;", c:byte()) end)) end

local FORMS = {
  pct_thrice = again(again(pct(KEY))),
  pct_all_thrice = again(again(pct(KEY, true))),
  html_in_pct = pct(html(KEY)),
  html_in_html = (html(KEY):gsub("&", "&amp;")),
  pct_in_html = (pct(KEY, true):gsub("%%", "&#37;")),
}

-- Whether s holds 12 bytes in a row of the key once every escape of the
-- forms above is decoded, as deep as they go.
local function leaks (s)
  for _ = 1, 4 do
    s = s:gsub("%%(%x%x)", function (h) return string.char(tonumber(h, 16)) end)
         :gsub("&#[xX](%x+);", function (h) return string.char(tonumber(h, 16)) end)
         :gsub("&#(%d+);", function (d) return string.char(tonumber(d)) end)
         :gsub("&amp;", "&")
  end
  return texts.holds_run(s, { KEY })
end

local function names ()
  local list = {}
  for name in pairs(FORMS) do list[#list + 1] = name end
  table.sort(list)
  return list
end

describe("a key in nested escapes", function ()
  it("the forms are real: each leaks by the test's own measure, in pieces under 12 bytes", function ()
    for _, name in ipairs(names()) do
      assert.is_true(leaks("x " .. FORMS[name] .. " y"), name)
      assert.is_false(texts.holds_run(FORMS[name], { KEY }), name)
    end
  end)

  it("engine:scrub redacts each, the text around kept", function ()
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = KEY }
    for _, name in ipairs(names()) do
      local out = c._engine:scrub("seen: " .. FORMS[name] .. ". ok")
      -- (compared, not printed: no form of the key in the test's output)
      assert.is_false(leaks(out), name)
      assert.is_truthy(out:find("[redacted]", 1, true), name)
      assert.is_truthy(out:find("^seen: "), name)
      assert.is_truthy(out:find("%. ok$"), name)
    end
    local text = "50%25 off %25252F &amp;amp; &amp;#x263A; %2526"   -- (nested escapes of no key: kept)
    assert.equal(text, c._engine:scrub(text))
    c:close()
  end)

  it("a server's error echoing them: no form in err, tostring(err), the log lines", function ()
    local list, replies = names(), {}
    for i, name in ipairs(list) do replies[i] = "e400 Invalid key " .. FORMS[name] end
    local srv = scripted.start(replies)
    local lines = {}
    local client = aigc.client { base_url = srv.base_url, api_key = KEY, max_retries = 0,
                                 log = function (level, msg) lines[#lines + 1] = level .. ": " .. msg end }
    for _, name in ipairs(list) do
      local res, err = client:chat { model = "m", messages = { { role = "user", content = "Hi" } } }
      assert.is_nil(res)
      assert.equal(400, err.status, name)
      assert.is_false(leaks(texts.all(err)), name .. ": err")
      assert.is_false(leaks(tostring(err)), name .. ": tostring(err)")
    end
    client:close()
    srv.finish()
    assert.is_true(#lines > 0)
    assert.is_false(leaks(table.concat(lines, "\n")), "a log line")
  end)

  it("the recording proxy masks them in the cassette", function ()
    local echoed = {}
    for _, name in ipairs(names()) do echoed[#echoed + 1] = FORMS[name] end
    local content = cjson.encode("keys: " .. table.concat(echoed, " ")):sub(2, -2)
    local live, err, tape = upstream.recorded(string.format("reply(s, %q)", content),
      { model = "m", api_key = KEY }, { messages = { { role = "user", content = "hi" } } }, finally)
    assert.is_nil(err and err.message, err and err.message)
    assert.is_true(leaks(live.text))   -- (the upstream did echo it: checked, not printed)
    assert.is_truthy(tape:find("keys: ", 1, true))
    assert.is_false(leaks(tape), "a form of the key is on the tape")
  end)
end)
