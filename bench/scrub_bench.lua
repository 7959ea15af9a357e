-- The cost of scrubbing a 1 MB text (an error body) of an engine's secrets:
-- the CPU of engine:scrub, the median of ROUNDS calls, for texts with no
-- JSON escape, with a few (a JSON text in a string: \" and \n every line),
-- with every character \u-escaped (the worst case of the JSON-unescaped
-- search), and the same with the key echoed in it 100 times; an HTML text
-- with '&amp;' and percent-encoded URLs, every character an HTML character
-- reference (searched unescaped since 2026-12-06 evening); then 4 MB of
-- the worst, to show the cost is linear (about 4x).
--
--   lua5.4 bench/scrub_bench.lua [ROUNDS] [CPATH]      (default 9, ./?.so)
-- Not run by `make bench`: run it by hand from the repo root after `make`
-- (CPATH: another tree's build, to compare).
package.path = "lua/?.lua;lua/?/init.lua;bench/?.lua;" .. package.path
package.cpath = (arg[2] or "./?.so") .. ";" .. package.cpath
local aigc = require "aigc"
local ROUNDS = tonumber(arg[1]) or 9

local KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1w+Xy/Zq=="
local client = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = KEY }

local function every (s, fmt)
  return (s:gsub(".", function (c) return string.format(fmt or "\\u%04x", c:byte()) end))
end

local function text_of (size, line, key)
  local parts, n = {}, 0
  while n < size do
    parts[#parts + 1] = line
    n = n + #line
    if key and #parts % (size // #line // 100) == 0 then parts[#parts + 1] = key end
  end
  return table.concat(parts):sub(1, size)
end

local function cpu_of (s)
  local t = {}
  for i = 1, ROUNDS do
    local c = os.clock()
    client._engine:scrub(s)
    t[i] = os.clock() - c
  end
  table.sort(t)
  return t[(ROUNDS + 1) // 2]
end

local MB = 1024 * 1024
local plain = "The quick brown fox jumps over the lazy dog, again and again, 0123456789.\n"
local html = '<p>Fish &amp; chips: <a href="/q?u=https%3A%2F%2Fexample.com%2Fa%2Fb">here</a></p>\n'
local json = '{\\"error\\": {\\"message\\": \\"The quick brown fox jumps over the lazy dog\\"}}\\n'
local cases = {
  { "1 MB, no escape", text_of(MB, plain) },
  { "1 MB, a JSON text in a string", text_of(MB, json) },
  { "1 MB, every character \\u-escaped", text_of(MB, every(plain)) },
  { "1 MB, no escape, the key 100 times", text_of(MB, plain, KEY) },
  { "1 MB, every character \\u-escaped, the key 100 times", text_of(MB, every(plain), every(KEY)) },
  { "1 MB, HTML and URLs (&amp; %2F every line)", text_of(MB, html) },
  { "1 MB, every character &#x..; (HTML)", text_of(MB, every(plain, "&#x%x;")) },
  { "4 MB, every character \\u-escaped", text_of(4 * MB, every(plain)) },
}
cpu_of(cases[1][2])   -- warm up
for _, case in ipairs(cases) do
  print(("%-55s %8.2f ms of CPU (median of %d)"):format(case[1], cpu_of(case[2]) * 1e3, ROUNDS))
end
client:close()
