-- The rows of the README's "What differs between the Lua versions" that no
-- other spec covers, asserted under whichever Lua runs the specs (make
-- test runs this file under 5.1, 5.2, 5.3, 5.4 and LuaJIT). The other rows:
-- numbers_spec and json_spec (integers), stream_spec, client_spec and
-- async_spec (`<close>` and its explicit forms), async_spec (a wait under a
-- C function; the generic for on 5.1), lifecycle_contract_spec (close() in
-- a finalizer; a userdata finalizer on 5.1/LuaJIT).
local aigc = require "aigc"
local devserver = require "devserver"
local portable = require "portable"

describe("what differs between the Lua versions", function ()
  local srv, client

  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function () client = aigc.client { base_url = srv.base_url, max_retries = 0 } end)
  after_each(function () client:close() end)

  it("a task's wait inside pcall yields, except on PUC 5.1 where it raises", function ()
    local out, returned
    client:spawn(function ()
      out = portable.pack(pcall(function ()
        return assert(client:chat { messages = { { role = "user", content = "Echo: in pcall" } },
                                    headers = { ["x-aigc-fault"] = "delay=100" } }).text
      end))
    end)
    returned = out == nil   -- spawn returned at the task's first wait
    local deadline = os.time() + 10
    while out == nil and os.time() < deadline do client:step(0.01) end
    if portable.version == "5.1" then
      assert.is_false(out[1])
      assert.matches("attempt to yield across metamethod/C%-call boundary", tostring(out[2]))
    else
      assert.is_true(returned, "the wait blocked instead of yielding")
      assert.same({ true, "in pcall" }, { out[1], out[2] })
    end
  end)

  it("an error in a __gc finalizer: a warning on 5.4, raised by the collection elsewhere; aigc goes on", function ()
    local fired = false
    do
      portable.finalized(function () fired = true; error("the NPC's finalizer failed") end)
    end
    local ok, err
    if portable.version == "5.4" then warn("@off") end   -- (the warning is 5.4's channel; not printed here)
    ok, err = pcall(collectgarbage, "collect")
    if portable.version == "5.4" then warn("@on") end
    assert.is_true(fired)
    if portable.version == "5.4" then
      assert.is_true(ok)
    else
      assert.is_false(ok)
      assert.matches("the NPC's finalizer failed", tostring(err))
    end
    local res = assert(client:chat "Echo: still here")
    assert.equal("still here", res.text)
  end)
end)
