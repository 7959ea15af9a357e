-- A 429 or 503 whose Retry-After (or retry-after-ms) comes more than once:
-- two lines (a proxy adding its own to the server's), or one line with a
-- comma-separated list (HTTP's same thing, and what res.headers and a
-- cassette's replay give). Only the first line was read: a later, longer
-- wait was not obeyed, and the joined line was no number at all (the
-- backoff). Now every value counts, and the longest is the wait. Raw
-- replies from a one-off server (spec/support/oneshot.lua).
local aigc = require "aigc"
local oneshot = require "oneshot"

local BODY = '{"error":{"message":"slow down","type":"rate_limit_error"}}'

local function http_date (seconds_from_now)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + seconds_from_now)
end

-- The errors of one call each to a server answering 429 with `headers`.
local function errors_of (header_sets, max_retries)
  local replies = {}
  for i, h in ipairs(header_sets) do replies[i] = oneshot.http_reply("429 Too Many Requests", BODY, h) end
  local base_url = oneshot.serve_raw(replies, finally)
  local c = aigc.client { base_url = base_url, api_key = "sk-fake-retry-0123", max_retries = max_retries or 0,
                          timeout = 30 }
  local errs = {}
  for i = 1, #header_sets do
    local res, err = c:chat { model = "m", messages = { { role = "user", content = "Hi" } } }
    assert.is_nil(res)
    errs[i] = err
  end
  c:close()
  return errs
end

describe("a Retry-After sent more than once", function ()
  it("is the longest of its values, as two lines or as one comma-separated line", function ()
    local errs = errors_of {
      "Retry-After: 3\r\nRetry-After: 7\r\n",
      "Retry-After: 7, 3\r\n",
      "retry-after-ms: 2500\r\nRetry-After-Ms: 500\r\nRetry-After: 9\r\n",
      "retry-after-ms: 500, 2500\r\n",
      "Retry-After: soon\r\nRetry-After: 4\r\n",   -- (a malformed value hides no other)
      "Retry-After: 2, " .. http_date(60) .. "\r\n",   -- (a date's comma is no separator)
    }
    local got = {}
    for i, err in ipairs(errs) do
      assert.same({ "http", 429 }, { err.kind, err.status }, i)
      got[i] = err.retry_after
    end
    assert.same({ 7, 7, 2.5, 2.5, 4 }, { got[1], got[2], got[3], got[4], got[5] })
    assert.is_true(got[6] > 50 and got[6] <= 61, tostring(got[6]))
    -- (the wait agrees with what err.headers shows)
    assert.equal("3, 7", errs[1].headers["retry-after"])
  end)

  it("with a value past 120 s among them is not retried (the server asked for that wait)", function ()
    local err = errors_of({ "Retry-After: 1\r\nRetry-After: 200\r\n" }, 1)[1]
    assert.same({ "http", 429, 200, 0 }, { err.kind, err.status, err.retry_after, err.retries })
  end)
end)
