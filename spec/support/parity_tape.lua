-- The parity probe's cassette and disk-cache part (spec/parity_spec.lua):
-- one Lua records a cassette and fills a cache directory; every Lua then
-- replays that cassette and hits that cache, with params whose numbers and
-- keys each Lua holds its own way (hash order; 2.0 a float or not).
-- Run: LUA spec/support/parity_tape.lua record|replay TAPE CACHE_DIR BASE_URL
-- (no -0.0 literal here: Lua 5.1 compiles a function's 0 and -0.0 to one
-- constant, so its `temperature = 0` would be -0 and another request).
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path   -- (parity_canon beside it)
local aigc = require "aigc"
local pc = require "parity_canon"
local case = pc.case

local mode, tape, cache_dir, base_url = arg[1], arg[2], arg[3], arg[4]

local function calls ()
  return {
    { messages = { { role = "user", content = "What is the capital of France?" } }, temperature = 0.7, seed = 42,
      max_tokens = 20, top_p = 1.0, logit_bias = { ["50256"] = -100, ["11"] = 2.5 }, stop = { "\n\n", "END" } },
    { messages = { { role = "system", content = "You are Sam." }, { role = "user", content = "Echo: héllo ☃ 😀" } },
      temperature = 2.0, presence_penalty = -0.5, frequency_penalty = 0.5, n = 2, user = "u-1",
      metadata = { b = "2", a = "1", ["10"] = "x", ["9"] = "y" } },
    { messages = { { role = "user", content = "Tell me a joke" } }, temperature = 0, max_tokens = 8,
      response_format = { type = "json_object" }, x_list = aigc.array {}, x_obj = {} },
  }
end

-- Recording goes through the bundled server; replaying does not reach it.
local client = aigc.client { base_url = base_url, model = "aigc-dev", max_retries = 0,
                             cassette = { path = tape, mode = mode, timing = false } }
for i, params in ipairs(calls()) do
  case("tape chat#" .. i, function () return client:chat(params) end)
  local got = {}
  params.stream = function (d) got[#got + 1] = d or "<nil>" end
  case("tape stream#" .. i, function ()
    local res, err = client:chat(params)
    return res, err, got
  end)
end
case("tape miss", function () return client:chat "Echo: never recorded" end)
client:close()

-- The disk cache: filled when recording (from the server), hit when
-- replaying (the base URL is part of its key: the same one).
local cached = aigc.client { base_url = base_url, model = "aigc-dev", max_retries = 0,
                             cache = { dir = cache_dir } }
for i, params in ipairs(calls()) do
  case("cache#" .. i, function ()
    local res, err = cached:chat(params)
    return res and res.cached, res, err
  end)
end
cached:close()
io.write("END\n")
