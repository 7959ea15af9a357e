-- The specs' harness (spec/support/preload.lua): every `finally` a test
-- registers runs. busted keeps only the last one, so a helper's cleanup
-- replaced the test's own (a server never stopped; see preload.lua).

describe("the spec harness's finally", function ()
  local ran = {}
  it("registers two cleanups, the second through a helper", function ()
    local function helper () finally(function () ran[#ran + 1] = "helper's" end) end
    finally(function () ran[#ran + 1] = "test's" end)
    helper()
  end)
  it("ran both, the last registered first", function ()
    assert.same({ "helper's", "test's" }, ran)
  end)
end)
