-- When the secrets search itself fails (the only way it can: no memory
-- for its copy of the text), what could not be scrubbed is not shown.
-- util.scrub returned the error whole then, and the batch reader's
-- clipped ids and the judges' quotes their raw text: the key a server
-- echoed went out with them. The failure is injected through a client
-- whose engine's scrub raises as a memory error does.

local aigc = require "aigc"
local util = require "aigc.util"
local judge = require "aigc.judge"

local KEY = "sk-proj-abcdefghijklmnop1234"

local function failing_client (message)
  return { _engine = { scrub = function () error(message, 0) end } }
end

local function server_error ()
  return aigc.core.error { kind = "http", status = 401, retry_after = 2, retryable = false,
                           message = "Incorrect API key provided: " .. KEY,
                           body = { error = { message = "Incorrect API key provided: " .. KEY } } }
end

describe("a scrub that fails", function ()
  it("withholds an error's text, keeping its kind and status", function ()
    local err = util.scrub(failing_client("not enough memory"), server_error())
    assert.is_true(util.is_error(err))
    assert.equal("http", err.kind)
    assert.equal(401, err.status)
    assert.equal(2, err.retry_after)
    assert.is_false(err.retryable)
    assert.is_nil(err.body)
    assert.is_nil(tostring(err):find(KEY, 1, true))
    assert.truthy(tostring(err):find("withheld", 1, true))
  end)

  it("withholds a text, never returning it raw", function ()
    local shown = util.scrubbed_text(failing_client("not enough memory"), "echo: " .. KEY)
    assert.is_nil(shown:find(KEY, 1, true))
    assert.truthy(shown:find("withheld", 1, true))
  end)

  it("withholds a judge's quote of the model's text", function ()
    local q = judge.quote("the key is " .. KEY, 200, failing_client("not enough memory"))
    assert.is_nil(q:find("abcdefghijklmnop", 1, true))
    assert.truthy(q:find("withheld", 1, true))
  end)

  it("lets an interrupt through instead of withholding", function ()
    local ok, e = pcall(util.scrub, failing_client("interrupted!"), server_error())
    assert.is_false(ok)
    assert.equal("interrupted!", e)
    ok, e = pcall(util.scrubbed_text, failing_client("interrupted!"), KEY)
    assert.is_false(ok)
    assert.equal("interrupted!", e)
  end)

  it("still scrubs when it works (a real client)", function ()
    local client = aigc.client { api_key = KEY, base_url = "http://127.0.0.1:9/v1" }
    local err = util.scrub(client, server_error())
    assert.is_nil(tostring(err):find(KEY, 1, true))
    assert.is_nil(util.scrubbed_text(client, "echo " .. KEY):find(KEY, 1, true))
    client:close()
  end)
end)
