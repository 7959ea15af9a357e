-- A client whose transport options libcurl refuses (a proxy, ca_file or
-- ca_path longer than libcurl's 8 MB input limit: the same refusal as an
-- out-of-memory copy) must fail every call with a clear error and must
-- never send a request without them: the handle whose setup failed is
-- not kept for the next request, which would otherwise reuse it as
-- "already configured" and go out directly, past the proxy, or with the
-- default CA store. The client stays usable (close, another client).

local aigc = require "aigc"
local devserver = require "devserver"

local HUGE = ("a"):rep(8 * 1000 * 1000 + 100)   -- > CURL_MAX_INPUT_LENGTH

describe("a client whose transport options libcurl refuses", function ()
  local srv
  setup(function () srv = devserver.start {} end)
  teardown(function () if srv then srv:stop() end end)

  for _, case in ipairs {
    { "proxy", { proxy = "http://" .. HUGE .. ":3128" } },
    { "ca_file", { ca_file = "/tmp/" .. HUGE } },
    { "ca_path", { ca_path = "/tmp/" .. HUGE } },
  } do
    it("fails every call over " .. case[1] .. ", and never sends one without it", function ()
      local opts = { base_url = srv.base_url, model = "aigc-dev", max_retries = 0 }
      for k, v in pairs(case[2]) do opts[k] = v end
      local c = aigc.client(opts)
      local before = srv:stats().requests_total
      for i = 1, 4 do
        local ok, err = pcall(c.chat, c, { messages = { { role = "user", content = "Echo: " .. i } } })
        assert.is_false(ok)
        assert.matches("could not configure the transfer", tostring(err), 1, true)
        assert.is_nil(tostring(err):find(HUGE:sub(1, 64), 1, true))   -- not echoed back
        ok = pcall(c.chat_async, c, { messages = { { role = "user", content = "Echo: async" } } })
        assert.is_false(ok)
        if i % 2 == 0 then collectgarbage() end   -- the failed requests' handles are freed
      end
      assert.are.equal(0, c:active())
      assert.are.equal(before, srv:stats().requests_total)   -- nothing reached the server
      c:close()
      -- another client of the same server is not affected
      local good = aigc.client { base_url = srv.base_url, model = "aigc-dev" }
      assert.are.equal("hi", good:chat { messages = { { role = "user", content = "Echo: hi" } } }.text)
      good:close()
    end)
  end
end)
