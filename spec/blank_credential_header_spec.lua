-- A credential that is not there: `api_key = ""` went out as
-- "Authorization: Bearer " (Azure's as an empty api-key), and a credential
-- header of the client's or of one call holding nothing ("Bearer ",
-- "Bearer" and spaces, "") was sent, authenticating nothing: the server's 401
-- named no option. An empty api_key is no key now (nothing sent, as an
-- empty $OPENAI_API_KEY); a credential header that holds none is a misuse
-- error naming it, before any request.
local aigc = require "aigc"
local devserver = require "devserver"

local USER = { { role = "user", content = "hi" } }

describe("a credential that holds nothing", function ()
  local srv
  setup(function () srv = devserver.start {} end)
  teardown(function () srv:stop() end)
  before_each(function () srv:reset() end)

  local function client (extra)
    local o = { base_url = srv.base_url, max_retries = 0, model = "aigc-dev" }
    for k, v in pairs(extra) do o[k] = v end
    return aigc.client(o)
  end

  -- The misuse error of `fn`, which must name `what`; no request was sent.
  local function refused (what, fn)
    local ok, err = pcall(fn)
    assert.is_false(ok, what)
    assert.truthy(tostring(err):find(what, 1, true), tostring(err))
    assert.equal(0, #srv:requests())
  end

  it("api_key = \"\" sends no Authorization (nor Azure's api-key): no key, as for a local server", function ()
    local c = client { api_key = "" }
    assert(c:chat { messages = USER })
    c:close()
    local last = srv:last()
    assert.is_nil(last.headers.authorization)
    local az = aigc.client { azure = true, endpoint = srv.url, api_version = "2024-06-01", api_key = "",
                             max_retries = 0 }
    assert(az:chat { model = "aigc-dev", messages = USER })
    az:close()
    assert.is_nil(srv:last().headers["api-key"])
    assert.is_nil(srv:last().headers.authorization)
  end)

  it("a client's Authorization of a scheme alone, or empty: refused, naming opts.headers and it", function ()
    for _, case in ipairs {
      { "Authorization", "Bearer ", 'holds no credential after "Bearer"' },
      { "Authorization", "Bearer", 'holds no credential after "Bearer"' },
      { "authorization", "bearer \t  ", 'holds no credential after "bearer"' },
      { "Authorization", "Basic ", 'holds no credential after "Basic"' },
      { "Proxy-Authorization", "Token  ", 'holds no credential after "Token"' },
      { "Authorization", "", "is empty" },
      { "x-api-key", "", "is empty" },
    } do
      refused(string.format('bad argument #1 to \'client\' (opts.headers: header "%s" %s', case[1], case[3]),
              function () client { headers = { [case[1]] = case[2] } } end)
    end
  end)

  it("a client's Authorization that holds a credential is sent, a scheme's or a raw key", function ()
    for _, value in ipairs { "Bearer sk-test-0123456789", "sk-test-raw-0123456789" } do
      local c = client { headers = { Authorization = value } }
      assert(c:chat { messages = USER })
      c:close()
      assert.equal("<redacted len=" .. #value .. ">", srv:last().headers.authorization)
    end
  end)

  it("one call's headers or extra_headers: refused naming them, nothing sent; the client goes on", function ()
    local c = client { api_key = "sk-test-0123456789abcdef" }
    refused('bad argument #1 to \'chat\' (params.headers: header "Authorization" holds no credential after "Bearer"',
            function () c:chat { messages = USER, headers = { Authorization = "Bearer " } } end)
    refused('bad argument #1 to \'chat\' (params.extra_headers: header "api-key" is blank',
            function () c:chat { messages = USER, extra_headers = { ["api-key"] = "   " } } end)
    refused('(params.headers: header "x-api-key" is empty',
            function () c:chat_async { messages = USER, headers = { ["x-api-key"] = "" } } end)
    local res = assert(c:chat { messages = USER, headers = { Authorization = aigc.null } })
    assert.is_string(res.text)
    assert.is_nil(srv:last().headers.authorization)
    c:close()
  end)
end)
