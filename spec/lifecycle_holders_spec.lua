-- spec/lifecycle/holders.lua: the lifecycle tester's "who holds it" for a
-- client left alive with its sockets open (the path from the registry).
package.path = "spec/lifecycle/?.lua;" .. package.path
local holders = require "holders"

describe("the lifecycle tester's holders.path", function ()
  after_each(function () package.loaded["holders_probe"] = nil end)

  it("names the module, the function and the upvalue that hold an object", function ()
    local target = {}
    local kept = target
    package.loaded["holders_probe"] = { keeper = function () return kept end }
    local path = holders.path(target, {})
    assert.equal("REG._LOADED.holders_probe.keeper.^kept", path)
  end)

  it("walks a suspended coroutine's locals", function ()
    local co = coroutine.create(function ()
      local in_frame = { "held" }
      coroutine.yield()
      return in_frame
    end)
    coroutine.resume(co)
    package.loaded["holders_probe"] = { co = co }
    local _, target = debug.getlocal(co, 1, 1)
    local path = holders.path(target, {})
    assert.is_string(path)
    assert.matches("^REG%._LOADED%.holders_probe%.co%.<frame %d+ in_frame>$", path)
  end)

  it("finds none through a weak table or a skipped one", function ()
    local target = {}
    package.loaded["holders_probe"] = { weak = setmetatable({ target }, { __mode = "v" }) }
    assert.is_nil(holders.path(target, {}))
    local skipped = { target }
    package.loaded["holders_probe"] = { strong = skipped }
    assert.is_nil(holders.path(target, { [skipped] = true }))
    assert.is_string(holders.path(target, {}))
  end)
end)
