-- The argument checks' fast path (issue 17): `core.fields_fit` answers
-- "nothing to report" for a call whose every field has a plain rule and
-- fits it, so that the usual call skips the Lua walk of `aigc.check`
-- (~12k instructions). It must never say so where the walk would report
-- a problem (or warn of a typo): these cases hold the two to each other,
-- value by value and over random tables.
local core = require "aigc.core"
local check = require "aigc.check"

local null = core.null
local callable = setmetatable({}, { __call = function () end })

-- Candidate values per rule: fitting ones and every kind of misfit.
local VALUES = {
  string = { "x", "", 1, true, {}, null },
  number = { 0.5, 1, -3, 0 / 0, math.huge, "1", null, false },
  integer = { 1, 0, -7, 1.5, 2 ^ 53, math.huge, -math.huge, 0 / 0, "3", null },
  boolean = { true, false, 0, "true", null },
  table = { {}, { 1 }, "x", null, 1 },
  ["function"] = { function () end, callable, 1, "f", null },
  stream = { true, false, function () end, callable, "x", 0, null },
  messages = {
    { { role = "user", content = "hi" } },
    { { role = "system", content = "s" }, { role = "user", content = "u" } },
    {}, { { content = "no role" } }, { "x" }, { role = "user", content = "one message" },
    setmetatable({ { role = "user" } }, {}), { setmetatable({ role = "user" }, {}) },
    { { role = 1 } }, { { role = "a" }, { role = "b" }, 5 }, "a string", null,
    { { role = "a" }, nil, { role = 3 } },
  },
}

-- (typo warnings go to a log that keeps them, not to stderr)
local QUIET = { _log = function () end, _typos = {} }

local function fits_and_walk (api, params)
  return core.fields_fit(params, check.FAST[api]), check.walk_call(QUIET, api, params)
end

describe("core.fields_fit, the fast path of the argument checks", function ()
  it("takes the usual call, and leaves every misfit to the walk", function ()
    local usual = { model = "gpt-4o-mini", temperature = 0.7, max_tokens = 128,
                    messages = { { role = "system", content = "s" }, { role = "user", content = "u" } },
                    on_done = function () end, on_error = function () end, stream = function () end }
    assert.is_true((fits_and_walk("chat", usual)))
    assert.is_true((fits_and_walk("completion", { prompt = "x" })) == false)   -- (prompt: a rule of its own)
    for _, misfit in ipairs {
      { messages = {}, temperature = 0 / 0 }, { messages = {}, max_tokens = 1.5 },
      { messages = {}, cache = true },                   -- (not a request field: the hook's mark)
      { messages = {}, max_token = 3 },                  -- (a likely typo: the walk warns)
      { messages = {}, headers = {} },                   -- (headers: the walk checks each)
      { messages = {}, timeout = 5 },                    -- (a per-call option with bounds)
      { messages = {}, temperature = null },             -- (JSON null passes, in the walk)
      { messages = {}, [1] = "x" },                      -- (a key that is not a name)
      setmetatable({ messages = {} }, { __index = {} }), -- (read raw: a metatable walks)
    } do
      assert.is_false((fits_and_walk("chat", misfit)))
    end
  end)

  it("never passes a field the walk would report, for every rule and value", function ()
    for api, fast in pairs(check.FAST) do
      for key, rule in pairs(fast) do
        local base = api == "chat" and { messages = { { role = "user" } } } or {}
        for _, v in ipairs(assert(VALUES[rule], rule)) do
          local p = {}
          for k, x in pairs(base) do p[k] = x end
          p[key] = v
          local fit, why = fits_and_walk(api, p)
          if fit then assert.is_nil(why, api .. "." .. key .. " = " .. tostring(v)) end
        end
      end
    end
  end)

  it("agrees with the walk over random calls (the walk finds nothing where it fits)", function ()
    math.randomseed(17)
    local fitted, walked_clean, walked_problem = 0, 0, 0
    for _ = 1, 3000 do
      for api, fast in pairs(check.FAST) do
        local keys = {}
        for key in pairs(fast) do keys[#keys + 1] = key end
        table.sort(keys)
        local p = {}
        for _ = 1, math.random(1, 6) do
          local key = keys[math.random(#keys)]
          local values = VALUES[fast[key]]
          p[key] = values[math.random(#values)]
        end
        local fit, why = fits_and_walk(api, p)
        if fit then
          fitted = fitted + 1
          assert.is_nil(why)
        elseif why then
          walked_problem = walked_problem + 1
        else
          walked_clean = walked_clean + 1
        end
      end
    end
    -- (all three outcomes happen: the comparison covers each)
    assert.is_true(fitted > 100 and walked_problem > 100 and walked_clean > 100,
                   fitted .. " " .. walked_problem .. " " .. walked_clean)
  end)

  it("leaves the errors as they were: the walk still names the field", function ()
    local client = require("aigc").client { base_url = "http://127.0.0.1:9/v1" }
    assert.error_matches(function () client:chat { messages = { { role = "user" } }, max_tokens = 1.5 } end,
      "bad argument #1 to 'chat' %(params.max_tokens: integer expected, got 1.5%)")
    assert.error_matches(function () client:chat { messages = { { content = "x" } } } end,
      "params.messages%[1%].role: string expected")
    client:close()
  end)
end)
