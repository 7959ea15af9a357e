-- README: no secret ever appears in a `tostring`. Every object a client
-- gives (the client, its engine, a request, a stream, a conversation, a
-- future, a task) and its error, made with every secret option set at once
-- (api_key, a credential header, a proxy's and base_url's passwords, a
-- lone token@ user info, a credential query parameter), shows no run of 6
-- bytes of any of them, open and closed.
local aigc = require "aigc"

local S = { api_key = "sk-apikey-Aa11Bb22Cc33", header = "hdrkey-Dd44Ee55Ff66", proxy = "proxypw-Gg77Hh88",
            base = "basepw-Ii99Jj00", query = "qkey-Kk12Ll34Mm", lone = "lonetok-Nn56Oo78Pp" }

local function assert_no_secret (what, v)
  local text = tostring(v)
  for name, key in pairs(S) do
    for i = 1, #key - 5 do
      assert(not text:find(key:sub(i, i + 5), 1, true), what .. " shows a piece of the " .. name .. ": " .. text)
    end
  end
end

describe("tostring of every object of a client with every secret option", function ()
  for _, userinfo in ipairs { "user:" .. S.base, S.lone } do
    it("shows none of them (base_url's user info " .. (userinfo == S.lone and "a token" or "user:password") .. ")",
       function ()
      -- (through a proxy nothing listens on: every call ends in a connect error, which names the proxy)
      local base = "http://" .. userinfo .. "@127.0.0.1:9/v1?api-key=" .. S.query
      local c = aigc.client { base_url = base, api_key = S.api_key, headers = { ["x-api-key"] = S.header },
                              query = { key = S.query }, model = "m", max_retries = 0,
                              proxy = "http://u:" .. S.proxy .. "@127.0.0.1:9" }
      local conv = aigc.conversation { client = c, system = "x" }
      local objects = {
        client = c, engine = c._engine, conversation = conv,
        request = c:chat_async { messages = { { role = "user", content = "hi" } } },
        stream = c:stream { messages = { { role = "user", content = "hi" } } },
        future = conv:say_async "hi",
        task = c:spawn(function () return 1 end),
      }
      local _, err = c:chat { messages = { { role = "user", content = "hi" } } }
      assert.equal("connect", err and err.kind)
      objects.err = err
      for what, v in pairs(objects) do assert_no_secret(what, v) end
      c:close()
      for what, v in pairs(objects) do assert_no_secret(what .. " (closed)", v) end
    end)
  end
end)
