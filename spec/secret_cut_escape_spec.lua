-- A text cut inside an HTML character reference or a percent escape (a
-- server's error body truncated at its limit mid-escape: "...&#x6", "%6")
-- right after the first 8 to 11 bytes of a key, each byte of them escaped.
-- The redaction finds a key cut by a truncation only when its start ends
-- the text; the cut escape after it hid it (it knew only a JSON "\u00" cut
-- short), so those 8 to 11 bytes stayed readable once unescaped.
local aigc = require "aigc"
local echoed = require "echoed"
local texts = require "texts"

local KEY = "Ab3dEf6hIj9kLm2nOp5qRs8tUv1w"

local function html (s) return (s:gsub(".", function (c) return string.format("&#x%x;", c:byte()) end)) end
local function dec (s) return (s:gsub(".", function (c) return string.format("&#%d;", c:byte()) end)) end
local function pct (s) return (s:gsub(".", function (c) return string.format("%%%02X", c:byte()) end)) end

-- Each: the key's first n bytes escaped, then an escape cut short.
local CASES = {}
for _, n in ipairs { 8, 11 } do
  local head = KEY:sub(1, n)
  for name, text in pairs {
    html_amp = html(head) .. "&", html_hash = html(head) .. "&#", html_x = html(head) .. "&#x",
    html_digit = html(head) .. "&#x6", dec_digits = dec(head) .. "&#10", named = html(head) .. "&am",
    pct = pct(head) .. "%", pct_digit = pct(head) .. "%6", pct_twice = pct(head):gsub("%%", "%%25") .. "%25",
  } do
    CASES[#CASES + 1] = { name = name .. "_" .. n, text = text }
  end
end
table.sort(CASES, function (a, b) return a.name < b.name end)

-- Whether s holds the key's first 8 bytes once unescaped (as the cases escape it).
local function leaks (s)
  for _ = 1, 2 do
    s = s:gsub("%%(%x%x)", function (h) return string.char(tonumber(h, 16)) end)
         :gsub("&#[xX](%x+);", function (h) return string.char(tonumber(h, 16)) end)
         :gsub("&#(%d+);", function (d) return string.char(tonumber(d)) end)
  end
  return s:lower():find(KEY:sub(1, 8):lower(), 1, true) ~= nil
end

describe("a text cut inside an escape after a key's start", function ()
  it("the cases are real: each leaks by the test's own measure", function ()
    for _, case in ipairs(CASES) do
      assert.is_true(leaks("seen: " .. case.text), case.name)
      assert.is_false(texts.contains(case.text, KEY:sub(1, 4)), case.name)   -- (only escaped)
    end
  end)

  it("engine:scrub redacts the key's start, the text before kept", function ()
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = KEY }
    for _, case in ipairs(CASES) do
      local out = c._engine:scrub("seen: " .. case.text)
      -- (compared, not printed)
      assert.is_false(leaks(out), case.name)
      assert.is_truthy(out:find("^seen: "), case.name)
      assert.is_truthy(out:find("[redacted]", 1, true), case.name)
    end
    for _, s in ipairs { "fish &", "50 %", "a &#x6", "b &am", "c %4" } do   -- (a cut escape after no key: kept)
      assert.equal(s, c._engine:scrub(s))
    end
    c:close()
  end)

  it("a server's error body cut so: not in err, tostring(err), the log lines", function ()
    local cases = {}
    for i, case in ipairs(CASES) do cases[i] = { case.name, "Invalid key " .. case.text } end
    assert.same({}, echoed.server_errors(KEY, cases, leaks))
  end)
end)
