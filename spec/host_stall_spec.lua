-- A host that stops driving aigc for a while right after it starts a
-- stream (a game's loading screen: no step() for seconds), then steps
-- again. A stream's timeout is an idle limit: "no data from the server for
-- N s". Its clock ran from the request's start whether or not anything
-- drove the transfer, so the first step after the stall found it passed
-- before the request had even gone out (or the instant it did), and the
-- stream failed with kind "timeout", "no data from the server for 2 s", a
-- server that had not heard the question yet. A plain call's total timeout
-- was libcurl's, which checks before it reads: the reply, there in the
-- socket, "Operation timed out". The limit (aigc's own now for plain calls
-- too) counts again from the end of a stall that swallowed it, once an
-- attempt: a server that never answers is still reported. A binary
-- download's idle limit (aigc's own now too, not libcurl's low-speed check) alike.
local aigc = require "aigc"
local devserver = require "devserver"

describe("a host that does not step for longer than a stream's idle timeout", function ()
  local srv
  devserver.fixture(_ENV, function (s) srv = s end)
  -- The idle/total limit and a stall longer than it (how much longer does not
  -- matter: the limit used to have passed when the stall ended). Scaled under
  -- valgrind, where a reply after the stall takes longer to arrive.
  local SCALE = tonumber(os.getenv("AIGC_TIMEOUT_SCALE")) or 1
  local LIMIT, STALL = 0.6 * SCALE, 1.0 * SCALE

  -- The stall: no turn of aigc's loop for `seconds` (the host busy elsewhere).
  local function stall (seconds)
    local t0 = aigc.now()
    os.execute(string.format("sleep %.3f", seconds))
    while aigc.now() - t0 < seconds do end   -- (os.execute may return early on a signal)
  end

  -- kind: "stream", "plain" (a chat call) or "file" (a binary download: speech).
  local function start (c, fault, kind)
    local out = {}
    local headers = fault and { ["x-aigc-fault"] = fault } or nil
    local function on_error (e) out.err = e end
    if kind == "file" then
      c:speech_async { input = "hi there", model = "tts-1", voice = "alloy", headers = headers,
                       on_done = function (res) out.text = res.body end, on_error = on_error }
      return out
    end
    c:chat_async { messages = { { role = "user", content = "hi there" } },
                   stream = kind == "stream" and function () end or nil, headers = headers,
                   on_done = function (res) out.text = res.text end, on_error = on_error }
    return out
  end

  -- (delay=300: the request has gone out, the reply comes during the stall)
  for _, case in ipairs { { 0, "stream" }, { 1, "stream" }, { 1, "plain" }, { 5, "plain", "delay=300" },
                          { 0, "file" } } do
    local steps, kind, fault = case[1], case[2], case[3]
    it("gets its reply (" .. kind .. ") when the stall began after " .. steps .. " steps "
       .. (fault or ""), function ()
      local c = aigc.client { base_url = srv.base_url, max_retries = 0, timeout = LIMIT }
      finally(function () c:close() end)
      local out = start(c, fault, kind)
      for _ = 1, steps do c:step(0.01) end
      stall(STALL)
      while c:step(0.05) > 0 do end
      assert.is_nil(out.err, out.err and tostring(out.err))
      assert.is_string(out.text)
      assert.is_true(#out.text > 0)
    end)
  end

  for _, kind in ipairs { "stream", "plain", "file" } do
    it("still times out on a server that never answers (the limit restarts once): " .. kind, function ()
      local c = aigc.client { base_url = srv.base_url, max_retries = 0, timeout = LIMIT }
      finally(function () c:close() end)
      local out = start(c, "hang", kind)
      stall(STALL)
      while c:step(0.05) > 0 do end
      assert.is_table(out.err)
      assert.equal("timeout", out.err.kind)
      assert.matches(kind == "plain" and "timed out after %d+ milliseconds"
                     or kind == "file" and "Operation too slow"
                     or ("no data from the server for " .. string.format("%g", LIMIT) .. " s"):gsub("%.", "%%."),
                     out.err.message)
    end)
  end
end)
