-- A call whose credential query parameter is "" (`query = { key = "" }`,
-- a placeholder a config left empty): the empty value was taken for a
-- secret, and replacing "" (gsub's empty pattern) put "[redacted]"
-- between every two bytes of the cassette's key. The tape was unreadable,
-- and it missed for the same call made without the empty parameter.
local aigc = require "aigc"
local devserver = require "devserver"
local cjson = require "cjson"
local cli = require "cli"

local PLAIN = 'POST /chat/completions {"messages":[{"content":"Hi","role":"user"}],"model":"aigc-dev","temperature":0}'

describe("a cassette of a call whose credential query parameter is \"\"", function ()
  local dir, srv
  before_each(function () dir, srv = cli.home(), devserver.start { pause_ms = 1 } end)
  after_each(function () srv:stop(); cli.rmdir(dir) end)

  local function call (path, mode, proxy, query)
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = "sk-fake-cassette-0123",
                            max_retries = 0, cassette = { path = path, mode = mode, proxy = proxy } }
    local res, err = c:chat { messages = { { role = "user", content = "Hi" } }, temperature = 0, query = query }
    c:close()
    return res, err
  end

  for _, proxy in ipairs { true, false } do
    it("keeps the call's plain key, and replays for the call with or without it (proxy = " .. tostring(proxy) .. ")",
       function ()
      local path = dir .. "/tape.jsonl"
      assert(call(path, "record", proxy, { key = "" }))
      local keys = {}
      for line in io.lines(path) do keys[#keys + 1] = cjson.decode(line).key end
      assert.same({ PLAIN }, keys)
      for _, query in ipairs { { key = "" }, false } do
        local res, err = call(path, "replay", proxy, query or nil)
        assert.is_nil(err and tostring(err))
        assert.equal("Hello! How can I help you today?", res.text)
      end
    end)
  end
end)
