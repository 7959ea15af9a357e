-- Forms of an echoed key the redaction missed: a short key (4 to 7 bytes,
-- matched only whole) echoed in another case ("SK-1" for "sk-1"), the
-- base64 of the upper- or lower-cased key (a gateway folding a header's
-- case before encoding it), a key percent-encoded byte by byte
-- ("%73%6B%2D..."). Each stayed whole in err.message, tostring(err), the
-- log lines: now each is "[redacted]".
local aigc = require "aigc"
local b64 = require "b64"
local devserver = require "devserver"

local KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1w"

local function every_byte_pct (s, fmt)
  return (s:gsub(".", function (ch) return string.format(fmt, ch:byte()) end))
end

describe("redaction of an echoed key's other forms", function ()
  it("a short key echoed in another case, as a whole word", function ()
    local c = aigc.client { base_url = "http://127.0.0.1:1/v1", api_key = "sk-1" }
    local scrub = function (s) return c._engine:scrub(s) end
    assert.equal("INVALID KEY [redacted]. key [redacted]", scrub("INVALID KEY SK-1. key Sk-1"))
    assert.equal("TASK-1 SK-12", scrub("TASK-1 SK-12"))   -- still only as a whole word
    c:close()
  end)

  it("the base64 of the key upper-cased or lower-cased, with any prefix", function ()
    local c = aigc.client { base_url = "http://127.0.0.1:1/v1", api_key = KEY }
    for _, form in ipairs { KEY:upper(), KEY:lower(), "Bearer " .. KEY:upper(), "x:" .. KEY:lower() } do
      local out = c._engine:scrub("auth " .. b64(form) .. " refused")
      -- (kept: what the prefix alone decides, and the padding)
      local head, tail = out:match("^auth ([A-Za-z0-9+/]*)%[redacted%]([A-Za-z0-9+/=]*) refused$")
      assert.is_string(head, out)
      assert.is_true(#head <= 10 and #tail <= 3, out)
    end
    c:close()
  end)

  it("the key percent-encoded byte by byte, in either hex case", function ()
    local c = aigc.client { base_url = "http://127.0.0.1:1/v1", api_key = KEY }
    assert.equal("q=[redacted]&x=1", c._engine:scrub("q=" .. every_byte_pct(KEY, "%%%02X") .. "&x=1"))
    assert.equal("q=[redacted]&x=1", c._engine:scrub("q=" .. every_byte_pct(KEY, "%%%02x") .. "&x=1"))
    c:close()
  end)

  it("an error a stream callback raises with them: no form left in the error, tostring(err), the log", function ()
    local srv = devserver.start()
    finally(function () srv:stop() end)
    local lines = {}
    local c = aigc.client { base_url = srv.base_url, api_key = KEY, max_retries = 0,
                            log = function (level, msg) lines[#lines + 1] = level .. ": " .. msg end }
    local leak = { b64(KEY:upper()), every_byte_pct(KEY, "%%%02X") }
    local res, err = c:chat { model = "m", messages = { { role = "user", content = "Hi" } },
                              stream = function () error("leak " .. table.concat(leak, " ")) end }
    c:close()
    assert.is_nil(res)
    assert.equal("callback", err.kind)
    assert.matches("leak %[redacted%]", err.message)
    local text = err.message .. "\n" .. tostring(err) .. "\n" .. table.concat(lines, "\n")
    for _, form in ipairs(leak) do
      assert.is_nil(text:find(form:sub(5, 20), 1, true))
    end
  end)
end)
