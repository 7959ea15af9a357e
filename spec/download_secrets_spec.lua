-- The credentials a download's URL carries (a signed URL's `sig=` or
-- `X-Amz-Signature=`, as an API's file link or its redirect to storage
-- has; a password in the user info) were no secrets: a server echoing
-- them, or aigc's own redirect errors naming the URLs ("a redirect loop
-- (URL redirects back to URL)"), put them whole into the error and the
-- log lines.
local aigc = require "aigc"
local devserver = require "devserver"

local SIG = "Qz7Wx9Lk2Rt5Yp8Mn4Bv6Cx1"

local texts = require "texts"
local contains, all_text = texts.contains, texts.all

describe("a download's URL credentials", function ()
  local srv, c, lines
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)
  before_each(function ()
    lines = {}
    c = aigc.client { base_url = srv.base_url, max_retries = 0,
                      log = function (level, msg) lines[#lines + 1] = level .. ": " .. msg end }
  end)
  after_each(function () c:close() end)

  local function clean (err)
    assert.is_table(err)
    assert.is_false(contains(all_text(err) .. "\n" .. tostring(err) .. "\n" .. table.concat(lines, "\n"), SIG))
  end

  it("a signed URL's signature a server echoes: redacted", function ()
    for _, name in ipairs { "sig", "X-Amz-Signature" } do
      local _, err = c:download(srv.base_url .. "/models?sv=2024&" .. name .. "=" .. SIG,
                                { headers = { ["x-aigc-fault"] = "status=403,raw-header=x-echo: " .. SIG } })
      assert.equal(403, err.status)
      assert.equal("[redacted]", err.headers["x-echo"])
      clean(err)
    end
  end)

  it("a password in the URL's user info a server echoes: redacted", function ()
    local url = srv.base_url:gsub("^http://", "http://bob:" .. SIG .. "@") .. "/models"
    local _, err = c:download(url, { headers = { ["x-aigc-fault"] = "status=403,raw-header=x-echo: " .. SIG } })
    assert.equal("[redacted]", err.headers["x-echo"])
    clean(err)
  end)

  it("a redirect loop between signed URLs: the error names them without their signature", function ()
    local url = srv.base_url .. "/models?sig=" .. SIG
    local _, err = c:download(url, { headers = { ["x-aigc-fault"] = "status=302,raw-header=location: " .. url } })
    assert.matches("a redirect loop", err.message)
    assert.matches("sig=%[redacted%]", err.message)
    clean(err)
  end)

  it("a redirect to a signed URL: the message and the log line show it without its query", function ()
    local to = "https://storage.example/x.png?X-Amz-Credential=AKIA&X-Amz-Signature=" .. SIG
    local _, err = c:chat { model = "m", messages = { { role = "user", content = "Hi" } },
                            headers = { ["x-aigc-fault"] = "status=302,raw-header=location: " .. to } }
    assert.equal(302, err.status)
    assert.equal("HTTP status 302: a redirect to https://storage.example/x.png?..., which API calls never follow",
                 err.message)
    assert.equal(to, err.headers.location)   -- (the data the server sent, for the caller)
    assert.is_false(contains(tostring(err) .. "\n" .. table.concat(lines, "\n"), SIG))
    assert.is_true(#lines > 0)
  end)
end)
