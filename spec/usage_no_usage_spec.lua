-- client:usage(): replies that came without a usage (a stream sent with
-- include_usage = false) are counted apart, so the totals' shortfall shows.
local aigc = require "aigc"
local devserver = require "devserver"
local usage = require "aigc.usage"

describe("usage without a usage", function ()
  local srv
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)

  it("counts the streamed replies sent without include_usage in no_usage; the others not", function ()
    local client = aigc.client { base_url = srv.base_url, model = "aigc-dev" }
    local msgs = { { role = "user", content = "Echo: one two three" } }
    assert(client:chat { messages = msgs, stream = function () end })   -- (include_usage by default)
    local u = client:usage()
    assert.equal(0, u.no_usage)
    assert.is_true(u.total_tokens > 0)
    local res = assert(client:chat { messages = msgs, stream = function () end,
                                     stream_options = { include_usage = false } })
    assert.is_not_table(res.usage)
    local after = client:usage()
    assert.equal(2, after.requests)
    assert.equal(1, after.no_usage)
    assert.equal(u.total_tokens, after.total_tokens)       -- (its tokens are not known)
    assert.equal(1, usage.diff(after, u).no_usage)
    assert(client:models())                                 -- (no tokens to report: not counted)
    assert.equal(1, client:usage().no_usage)
    client:reset_usage()
    assert.equal(0, client:usage().no_usage)
    client:close()
  end)
end)
