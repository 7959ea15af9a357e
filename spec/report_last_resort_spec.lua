-- util.report's last resort: when the engine's own report of an error
-- fails (Lua out of memory while it scrubs), the error's text goes to
-- stderr scrubbed of the client's secrets, failing closed (a text it cannot
-- scrub is withheld, a fixed line written instead). It wrote tostring(err)
-- as it was: a callback error holding the key (a reply text the callback
-- raised) reached stderr whole.
--
-- The test host fails the n-th allocation growth of the report (and the
-- run - 1 after it) for every n up to past the report's last one (a run of
-- 1 fails nothing: Lua collects and tries a failed allocation again).
local luachild = require "luachild"

local KEY = "sk-proj-" .. ("Rr81QwErTy7uIoPaSdFgHjKl3ZxCvBnM"):rep(2)

local SCRIPT = [[
  local aigc = require "aigc"
  local util = require "aigc.util"
  local key, run = arg[1], tonumber(arg[2])
  local c = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = key, error_handler = function () end }
  -- a string, an aigc error and a script's table, each holding the key
  local errs = { "the reply said " .. key, aigc.core.error { kind = "callback", message = "saw " .. key },
                 setmetatable({}, { __tostring = function () return "npc saw " .. key end }) }
  local runs = 0
  for _, err in ipairs(errs) do
    for n = 1, 120 do
      aigc_host_failat(n, run)   -- luacheck: ignore 113 (the test host's)
      pcall(util.report, c, err)
      aigc_host_failat(0)   -- luacheck: ignore 113
      runs = runs + 1
    end
  end
  c:close()
  print(runs .. " runs")
]]

describe("util.report's last resort (the engine's report failed)", function ()
  for _, run in ipairs { 3, 100000 } do
    it("writes no secret to stderr, whichever allocation fails (runs of " .. run .. ")", function ()
      local host = luachild.host()
      if not host then pending("no C compiler to build spec/support/lua_host.c"); return end
      local r = luachild.run(SCRIPT, { lua = host, args = { KEY, tostring(run) }, timeout = 120 })
      assert.equal(0, r.status, r.stderr)
      assert.equal("360 runs\n", r.stdout)
      -- (the last resort did run: the engine's report, had it worked, gave
      -- the error_handler everything and wrote nothing)
      assert.matches("aigc: ", r.stderr, 1, true)
      for i = 1, #KEY - 11 do
        assert.is_nil(r.stderr:find(KEY:sub(i, i + 11), 1, true), "a piece of the key on stderr")
      end
      if run == 3 then   -- (memory again soon after: scrubbed, not withheld)
        assert.matches("aigc: the reply said [redacted]\n", r.stderr, 1, true)
      else
        assert.matches("aigc: [text withheld: it could not be scrubbed of secrets]\n", r.stderr, 1, true)
      end
    end)
  end
end)
