-- A key in escapes nested deeper than the redaction decoded: percent-
-- encoded three times (a URL in a URL in a URL's query: "%25252F"), the
-- HTML of a percent-encoded key, an HTML page quoting HTML ("&amp;#x73;"),
-- and quoting that ("&amp;amp;#x73;").
-- The search decoded one level of these (JSON's doubled backslashes
-- aside), so a key whose reserved characters cut it in pieces shorter than
-- 12 bytes, or a key every byte of which was escaped, stayed readable in
-- err.message, err.body, tostring(err), the log lines and a cassette.
local aigc = require "aigc"
local echoed = require "echoed"
local texts = require "texts"

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
  -- three levels where each decoding undoes one ("%25" does two at once): HTML in HTML in HTML, HTML in a
  -- percent-encoding in HTML
  html_thrice = (html(KEY):gsub("&", "&amp;"):gsub("&", "&amp;")),
  html_in_pct_in_html = html(pct(html(KEY), true)),
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

local function names () return echoed.names(FORMS) end

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
    local cases = {}
    for i, name in ipairs(names()) do cases[i] = { name, "Invalid key " .. FORMS[name] } end
    assert.same({}, echoed.server_errors(KEY, cases, leaks))
  end)

  it("the recording proxy masks them in the cassette", function ()
    local list = {}
    for _, name in ipairs(names()) do list[#list + 1] = FORMS[name] end
    assert.same({}, echoed.on_tape(KEY, list, leaks, finally))
  end)
end)
