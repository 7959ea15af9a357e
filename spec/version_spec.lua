--- One version (issue 11 item 8): AIGC_VERSION in src/aigc.h is the one
-- source; the module's _VERSION, the rockspec's name and `version`, the
-- README and the bundled server's _VERSION must say the same.

local ROOT = os.getenv("AIGC_SPEC_ROOT") or "."

local function read (path)
  local f = assert(io.open(ROOT .. "/" .. path, "rb"), "cannot open " .. path)
  local s = f:read("*a")
  f:close()
  return s
end

local function lines_of (cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

describe("one version", function ()
  local version = read("src/aigc.h"):match('\n#define AIGC_VERSION "([^"]*)"')

  it("src/aigc.h defines AIGC_VERSION as MAJOR.MINOR.PATCH", function ()
    assert.is_string(version)
    assert.matches("^%d+%.%d+%.%d+$", version)
  end)

  it("is the module's _VERSION (aigc and aigc.core)", function ()
    assert.equal(version, require("aigc.core")._VERSION)
    assert.equal(version, require("aigc")._VERSION)
  end)

  it("aigc.curl_version and aigc.http2 (the README's) are the core's", function ()
    local aigc, core = require "aigc", require "aigc.core"
    assert.matches("^%d+%.%d+%.%d+", aigc.curl_version)
    assert.equal(core.curl_version, aigc.curl_version)
    assert.is_boolean(aigc.http2)
    assert.equal(core.http2, aigc.http2)
  end)

  it("names the one rockspec, whose version field says it", function ()
    local files = lines_of("ls " .. ROOT .. "/rockspec")
    local rockspecs = {}
    for _, f in ipairs(files) do
      if f:match("%.rockspec$") then rockspecs[#rockspecs + 1] = f end
    end
    assert.same({ "aigc-" .. version .. "-1.rockspec" }, rockspecs)
    local fields = {}
    assert(require("aigc.compat").load_text(read("rockspec/" .. rockspecs[1]), "=rockspec", fields))()
    assert.equal("aigc", fields.package)
    assert.equal(version .. "-1", fields.version)
    assert.equal("v" .. version, fields.source.tag)
  end)

  it("is what the README says, and the README names that rockspec", function ()
    local readme = read("README.md")
    local said = {}
    for v in readme:gmatch("This is aigc (%d+%.%d+%.%d+)") do said[#said + 1] = v end
    assert.same({ version }, said)
    local named = 0
    for name in readme:gmatch("aigc%-[%w%.%-]+%.rockspec") do
      assert.equal("aigc-" .. version .. "-1.rockspec", name)
      named = named + 1
    end
    assert.is_true(named > 0, "the README names no rockspec")
  end)

  it("is the bundled server's _VERSION (it ships in the same rock)", function ()
    -- The server is a Lua 5.4 program: other Lua versions ask lua5.4.
    if _VERSION == "Lua 5.4" then
      assert.equal(version, require("aigc.devserver")._VERSION)
    else
      local out = lines_of("cd " .. ROOT .. " && lua5.4 -e 'package.path = \"lua/?.lua;lua/?/init.lua;\" .. "
                           .. "package.path; print(require(\"aigc.devserver\")._VERSION)'")
      assert.same({ version }, out)
    end
  end)

  it("is what `make version` prints", function ()
    assert.same({ version }, lines_of("make -s --no-print-directory -C " .. ROOT .. " version"))
  end)
end)
