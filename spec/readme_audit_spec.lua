-- README promises that no spec held to the letter (stop 45's audit): each
-- test quotes its sentence of README.md and checks it over real HTTP on
-- loopback, against the bundled server.

local aigc = require "aigc"
local devserver = require "devserver"

local function ask (c, params)
  params.messages = params.messages or { { role = "user", content = "Echo: hello there" } }
  return assert(c:chat(params))
end

describe("README, aigc.client's `headers`, `query`", function ()
  local srv
  devserver.fixture(_ENV, function (s) srv = s end)

  -- "a number is written ... (`1.5` under any C locale, `2.0` as `2`)"
  it("a whole float is sent as a whole number (2.0 as 2), the client's and a call's, header and query", function ()
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", max_retries = 0,
                            headers = { ["X-Client-Whole"] = 4 / 2, ["X-Client-Half"] = 1.5 },
                            query = { cw = 4 / 2 } }
    ask(c, { headers = { ["X-Call-Whole"] = 6 / 2, ["X-Call-Neg"] = -8 / 2, ["X-Call-Int"] = 7 },
             query = { qw = 10 / 2 } })
    c:close()
    local last = srv:last()
    local h, q = last.headers, last.query
    assert.same({ "2", "1.5", "3", "-4", "7" },
                { h["x-client-whole"], h["x-client-half"], h["x-call-whole"], h["x-call-neg"], h["x-call-int"] })
    assert.same({ "2", "5" }, { q.cw, q.qw })
  end)
end)
