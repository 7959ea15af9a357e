-- A credential in the client's query (`query = { sig = ... }`, or
-- base_url's "?key=...") whose bytes are percent-encoded on the wire (a
-- base64 signature's "+", "/", "="): a server echoing the URL it got (a
-- 404 naming the path, a gateway's error) shows the encoded form, which
-- was not redacted: only the decoded value was a secret, and the encoded
-- one holds no run of 12 of its bytes.
local aigc = require "aigc"
local devserver = require "devserver"
local util = require "aigc.util"
local credentials = require "aigc.credentials"

local SIG = "Qz7+Wx9/Lk2=Rt5+Yp8/Mn4=Bv6+Cx1/"   -- no 12 bytes in a row survive encoding

local texts = require "texts"
local contains, all_text = texts.contains, texts.all

describe("a query credential percent-encoded on the wire", function ()
  local srv
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)

  local function check (opts, echoed)
    local lines = {}
    opts.max_retries = 0
    opts.log = function (level, msg) lines[#lines + 1] = level .. ": " .. msg end
    local c = aigc.client(opts)
    local _, err = c:chat { model = "m", messages = { { role = "user", content = "Hi" } },
                            headers = { ["x-aigc-fault"] = "status=404,raw-header=x-echo: /v1/chat?sig=" .. echoed } }
    c:close()
    assert.equal(404, err.status)
    assert.equal("/v1/chat?sig=[redacted]", err.headers["x-echo"])
    assert.is_false(contains(all_text(err) .. tostring(err) .. table.concat(lines, "\n"), echoed))
  end

  it("the client's query option: the form aigc sends is redacted", function ()
    check({ base_url = srv.base_url, query = { sig = SIG } }, util.urlencode(SIG))
  end)

  it("base_url's query (sent re-encoded, whatever hex case it is written in)", function ()
    -- (util.encode_query sends each value as util.urlencode makes it)
    local written = SIG:gsub("[+/=]", function (c) return string.format("%%%02x", c:byte()) end)   -- lower-case hex
    check({ base_url = srv.base_url .. "?sig=" .. written }, util.urlencode(SIG))
  end)
end)

-- An Azure Functions base URL carries its function key as `?code=`: a
-- server echoing the URL it got (a 404 naming it) showed the key, in the
-- error, tostring(err) and the log lines, since `code` was not a name the
-- client took for a credential's.
describe("an Azure Functions key in base_url's ?code=", function ()
  local FUNC_KEY = "aZfUnC7kEy0Q9wX2vB5nM8lK3jH6gF1dS4aP=="

  it("is redacted wherever the server echoes it, the URL shown hides it", function ()
    local srv = devserver.start()
    finally(function () srv:stop() end)
    local lines = {}
    local c = aigc.client { base_url = srv.base_url .. "?code=" .. util.urlencode(FUNC_KEY), max_retries = 0,
                            log = function (level, msg) lines[#lines + 1] = level .. ": " .. msg end }
    local _, err = c:chat { model = "m", messages = { { role = "user", content = "Hi" } },
                            headers = { ["x-aigc-fault"] = "status=404,raw-header=x-echo: code " .. FUNC_KEY } }
    local shown = tostring(c)
    c:close()
    assert.equal(404, err.status)
    assert.equal("code [redacted]", err.headers["x-echo"])
    local text = all_text(err) .. tostring(err) .. shown .. table.concat(lines, "\n")
    assert.is_false(contains(text, FUNC_KEY:sub(1, 12)))
    assert.is_false(contains(text, util.urlencode(FUNC_KEY):sub(1, 12)))
  end)

  it("a parameter named like a code but no credential stays a plain word (lang_code)", function ()
    assert.is_true(credentials.secret_param("code"))
    assert.is_true(credentials.secret_param("Code"))
    assert.is_false(credentials.secret_param("lang_code"))
    assert.is_false(credentials.secret_param("country-code"))
  end)
end)
