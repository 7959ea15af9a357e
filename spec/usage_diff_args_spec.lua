-- aigc.usage.diff(after, before) given no snapshot (`diff(c:usage())`, a
-- typo's nil) raised "attempt to index a nil value (local 'before')" from
-- inside aigc/usage.lua: now a misuse error naming the argument, at the
-- caller's line. A snapshot of a few counts (one kept as JSON, say) is taken.
local aigc = require "aigc"
local devserver = require "devserver"

describe("aigc.usage.diff's arguments", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end, { model = "aigc-dev" })

  it("a snapshot left out or not a table: a misuse error naming it, at the caller's line", function ()
    local u = client:usage()
    for _, case in ipairs {
      { function () return aigc.usage.diff(u) end, "bad argument #2 to 'diff' (table (a client:usage() snapshot) "
        .. "expected, got nil)" },
      { function () return aigc.usage.diff(nil, u) end, "bad argument #1 to 'diff' (table (a client:usage() "
        .. "snapshot) expected, got nil)" },
      { function () return aigc.usage.diff(u, 5) end, "bad argument #2 to 'diff' (table (a client:usage() "
        .. "snapshot) expected, got number)" },
    } do
      local ok, err = pcall(case[1])
      assert.is_false(ok)
      assert.equal("usage_diff_args_spec.lua:", tostring(err):match("[%w_]+%.lua:"))
      assert.truthy(tostring(err):find(case[2], 1, true), tostring(err))
    end
  end)

  it("two snapshots, or a snapshot of a few counts: what happened in between", function ()
    local before = client:usage()
    assert(client:chat { messages = { { role = "user", content = "hi" } } })
    local after = client:usage()
    local d = aigc.usage.diff(after, before)
    assert.equal(1, d.requests)
    assert.equal(1, d.models["aigc-dev"].requests)
    assert.equal(after.total_tokens - before.total_tokens, d.total_tokens)
    d = aigc.usage.diff(after, { requests = 0 })
    assert.equal(1, d.requests)
    assert.equal(1, d.models["aigc-dev"].requests)
    assert.equal(0, aigc.usage.diff({ requests = 2 }, { requests = 2 }).requests)
  end)
end)
