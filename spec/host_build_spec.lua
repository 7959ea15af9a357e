-- `make host` compiles lua/aigc/ into libaigc.a (BUILD/aigc_modules.c,
-- scripts/embed-lua.lua): a C host runs the modules embedded at build time.
-- The rule listed the modules through a variable defined further down the
-- Makefile, which make expands when it reads the rule: empty there, so
-- aigc_modules.c depended on the script alone, and after a Lua module
-- changed `make host` (and the host suite's builds) kept embedding the old
-- code while the C objects were rebuilt.
local ROOT = os.getenv("AIGC_SPEC_ROOT") or "."

describe("make host", function ()
  it("embeds the Lua modules again when one of them changed", function ()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    -- an aigc_modules.c newer than every file; -W: as if stream.lua had just changed
    assert(io.open(dir .. "/aigc_modules.c", "w")):close()
    local p = assert(io.popen("make -n --no-print-directory -C " .. ROOT .. " -W lua/aigc/stream.lua BUILD="
                              .. dir .. " " .. dir .. "/aigc_modules.c 2>&1"))
    local out = p:read("*a")
    p:close()
    os.execute("rm -rf " .. dir)
    local target = dir:gsub("%p", "%%%0") .. "/aigc_modules%.c"
    assert.matches("scripts/embed%-lua%.lua " .. target .. " .*lua/aigc/stream%.lua", out)
  end)
end)
