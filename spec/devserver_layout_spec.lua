-- luacheck: std +busted
-- Issue 11 item 4: the devserver is a package of small files -- none over 800
-- lines, no named function over 80 -- and `require "aigc.devserver"` keeps
-- its API. Functions are found by their indentation (the code is formatted
-- so that a function's `end` sits at its `function`'s indentation).

local proc = require "procutil"
-- aigc's version, which the devserver carries (spec/version_spec.lua checks the source).
local VERSION = assert(io.open("src/aigc.h")):read("*a"):match('#define AIGC_VERSION "([^"]+)"')

local function files ()
  local list = { "lua/aigc/devserver.lua" }
  local p = assert(io.popen("ls lua/aigc/devserver/*.lua"))
  for f in p:lines() do list[#list + 1] = f end
  p:close()
  return list
end

-- { {name =, first =, lines =} ... } of the named functions of a source text.
local function functions (text)
  -- a block comment (the contract) keeps its line count but none of its words
  text = text:gsub("%-%-%[%[.-%]%]", function (c) return (c:gsub("[^\n]", "")) end)
  local lines = {}
  for l in (text .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
  local found = {}
  for i, l in ipairs(lines) do
    local indent, name = l:match("^(%s*)local function ([%w_]+)")
    if not name then indent, name = l:match("^(%s*)function ([%w_.:]+)") end
    if not name then indent, name = l:match("^(%s*)([%w_.]+) = function%s*%(") end
    if name and not l:find("%f[%w]end%s*$") then
      for j = i + 1, #lines do
        if lines[j]:match("^" .. indent .. "end%f[%W]") then
          found[#found + 1] = { name = name, first = i, lines = j - i + 1 }
          break
        end
      end
    end
  end
  return found
end

describe("the devserver package", function ()
  it("has no file over 800 lines and no function over 80", function ()
    local list = files()
    assert.is_true(#list >= 10, "files: " .. #list)
    local too_long = {}
    for _, f in ipairs(list) do
      local text = assert(proc.read_file(f))
      local _, n = text:gsub("\n", "")
      if n > 800 then too_long[#too_long + 1] = ("%s: %d lines"):format(f, n) end
      local fns = functions(text)
      assert.is_true(#fns > 0 or f:match("json") ~= nil, f)
      for _, fn in ipairs(fns) do
        if fn.lines > 80 then
          too_long[#too_long + 1] = ("%s:%d %s: %d lines"):format(f, fn.first, fn.name, fn.lines)
        end
      end
    end
    assert.same({}, too_long)
  end)

  it("the checker sees long functions", function ()
    local body = {}
    for i = 1, 90 do body[i] = "  x = x + 1" end
    local src = "local function big (x)\n" .. table.concat(body, "\n") .. "\n  return x\nend\n"
      .. "function M.small () return 1 end\n"
    local fns = functions(src)
    assert.equal(1, #fns)
    assert.equal("big", fns[1].name)
    assert.equal(93, fns[1].lines)
  end)

  it("keeps require 'aigc.devserver' and its API", function ()
    local p = io.popen([[lua5.4 -e 'package.path="lua/?.lua;"..package.path
      local d = require "aigc.devserver"
      print(type(d.start), type(d.run), type(d.parse_args), d._VERSION)
      local o = assert(d.parse_args{ "--port", "0", "--tokenizer", "words2", "--idle-timeout", "5", "--quiet" })
      print(o.port, o.tokenizer, o.idle_timeout, o.quiet)
      local uv = require "luv"
      local srv = assert(d.start{ port = 0, announce = false, quiet = true })
      print(type(srv.port), srv.url:match("^http://127%.0%.0%.1:%d+/v1$") ~= nil)
      srv.close(); uv.run()' 2>&1]])
    local out = p:read("*a")
    p:close()
    assert.equal("function\tfunction\tfunction\t" .. VERSION .. "\n0\twords2\t5\ttrue\nnumber\ttrue\n", out)
  end)
end)
