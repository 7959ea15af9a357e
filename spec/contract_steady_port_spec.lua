--- spec/contract/steady.lua starts Steady on a port free_port found free.
-- Another run's server (the suites of `make test` run side by side, each
-- with a Steady) may bind that port first; the harness must then not take
-- the other server for its own (its log, its stop), but start on another
-- port. Here free_port's first answer is the port of a Steady already
-- serving. Real Steady processes; pending where the OpenAPI file is absent.
local proc = require "procutil"

local here = debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") or ""
local checks = dofile(here .. "contract/checks.lua")

describe("the contract harness's Steady", function ()
  it("started on a port another Steady serves, starts on one of its own", function ()
    local f = io.open(checks.OPENAPI, "rb")
    if not f then return pending("the OpenAPI spec file is absent: " .. checks.OPENAPI) end
    f:close()
    -- (the harness is the same whatever Lua runs the specs, and two Steadies
    -- take 25-85 s on a loaded machine: the plain 5.4 lane runs it, once)
    if _VERSION ~= "Lua 5.4" or package.cpath:find("asan", 1, true) then
      return pending("the harness's test runs in the plain Lua 5.4 lane")
    end
    local opts = { dir = checks.CONTRACT_DIR, spec = checks.OPENAPI, timeout = 120 * checks.SCALE }
    local other = checks.steady.start(opts)
    local real, taken = proc.free_port, other.port
    proc.free_port = function ()   -- (steady.lua takes it when loaded)
      local p = taken or real()
      taken = nil
      return p
    end
    local ok, steady = pcall(dofile, checks.CONTRACT_DIR .. "/steady.lua")
    proc.free_port = real
    assert(ok, steady)
    local ok2, ours = pcall(steady.start, opts)
    if not ok2 then other:stop(); error(ours, 0) end
    local other_port, other_pid = other.port, other.pid
    local alive_both = proc.alive(ours.pid) and proc.alive(other_pid)
    ours:stop()
    local other_alive = proc.alive(other_pid)
    other:stop()
    assert.are_not.equal(other_port, ours.port)
    assert.is_true(alive_both)
    assert.is_true(other_alive)   -- (stopping ours did not stop the other)
  end)
end)
