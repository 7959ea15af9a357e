-- Streaming: deltas delivered live, the accumulated result shaped exactly
-- like the non-streamed one, and every way a stream can go wrong reported.
local aigc = require "aigc"
local devserver = require "devserver"
local portable = require "portable"

-- `local x <close> = obj` around `body(x)` on 5.4, the README's explicit form elsewhere.
local with_close = portable.with_close
local HAS_CLOSE = portable.has_close

warn("@on")

local USER = { { role = "user", content = "Generate a short story about a robot that learns to paint." } }

-- Compares two responses field by field, ignoring what differs between two
-- requests (id, created) and what aigc adds from the transport.
local IGNORED = { id = true, created = true, request_id = true, headers = true, retries = true }
local function comparable (res)
  local t = {}
  for k, v in pairs(res) do
    if not IGNORED[k] then t[k] = v end
  end
  -- Tool call ids are unique per request too.
  for _, choice in ipairs(t.choices or {}) do
    for _, call in ipairs(choice.message and type(choice.message.tool_calls) == "table"
                          and choice.message.tool_calls or {}) do
      call.id = call.id and "call_*"
    end
  end
  return t
end

local TOOLS = {
  { type = "function", ["function"] = { name = "get_weather", description = "Weather for a city",
    parameters = { type = "object", properties = { city = { type = "string" } }, required = { "city" } } } },
  { type = "function", ["function"] = { name = "get_time", description = "Time in a city",
    parameters = { type = "object", properties = { city = { type = "string" } }, required = { "city" } } } },
}

describe("streaming", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })

  local function fault (spec, extra)
    local p = { messages = USER, headers = { ["x-aigc-fault"] = spec } }
    for k, v in pairs(extra or {}) do p[k] = v end
    return p
  end

  describe("chat", function ()
    it("delivers deltas that concatenate to the final text", function ()
      local deltas, chunks = {}, 0
      local res, err = client:chat { messages = USER, stream = function (delta, chunk)
        if delta then deltas[#deltas + 1] = delta end
        assert.equal("chat.completion.chunk", chunk.object)
        chunks = chunks + 1
      end }
      assert.is_nil(err)
      assert.truthy(#deltas > 20)
      assert.equal(res.text, table.concat(deltas))
      assert.equal(res.choices[1].message.content, res.text)
      assert.equal("chat.completion", res.object)
      assert.truthy(chunks > #deltas)   -- the role chunk, the finish chunk, the usage chunk
      assert.is_table(res.usage)
    end)

    it("sends stream true, include_usage by default and Accept: text/event-stream", function ()
      assert(client:chat { messages = USER, stream = true })
      local last = srv:last()
      assert.is_true(last.body_json.stream)
      assert.same({ include_usage = true }, last.body_json.stream_options)
      assert.equal("text/event-stream", last.headers.accept)
    end)

    it("lets the caller override stream_options", function ()
      local res = assert(client:chat { messages = USER, stream = true, stream_options = { include_usage = false } })
      assert.same({ include_usage = false }, srv:last().body_json.stream_options)
      assert.is_nil(res.usage)   -- (none came: nil, as the SDKs' None)
    end)

    for _, n in ipairs { 1, 3 } do
      it("accumulates exactly the non-streamed response, n = " .. n, function ()
        local params = { messages = USER, n = n, seed = 42, logprobs = true, top_logprobs = 2 }
        local plain = assert(client:chat(params))
        params.stream = true
        local streamed = assert(client:chat(params))
        assert.same(comparable(plain), comparable(streamed))
        assert.equal(n, #streamed.choices)
      end)
    end

    it("accumulates two parallel tool calls exactly as the non-streamed response", function ()
      local ask = 'Use get_weather({"city":"Paris"}) and get_time({"city":"Tokyo"})'
      local params = { messages = { { role = "user", content = ask } }, tools = TOOLS }
      local plain = assert(client:chat(params))
      params.stream = true
      local streamed = assert(client:chat(params))
      assert.same(comparable(plain), comparable(streamed))
      local calls = streamed.choices[1].message.tool_calls
      assert.equal(2, #calls)
      assert.equal("get_weather", calls[1]["function"].name)
      assert.equal('{"city":"Paris"}', calls[1]["function"].arguments)
      assert.equal("get_time", calls[2]["function"].name)
      assert.equal('{"city":"Tokyo"}', calls[2]["function"].arguments)
      assert.equal("tool_calls", streamed.choices[1].finish_reason)
      assert.is_nil(calls[1].index)
    end)

    it("does not double ids and names a server repeats in every delta", function ()
      local params = { messages = { { role = "user", content = 'Use get_weather({"city":"Paris"})' } }, tools = TOOLS }
      local plain = assert(client:chat(params))
      params.stream = true
      params.headers = { ["x-aigc-fault"] = "repeat-ids" }
      local streamed = assert(client:chat(params))
      local a, b = plain.choices[1].message.tool_calls[1], streamed.choices[1].message.tool_calls[1]
      assert.equal(a["function"].name, b["function"].name)
      assert.equal(a["function"].arguments, b["function"].arguments)
      assert.matches("^call_", b.id)
      assert.is_nil(b.id:find("call_.*call_"))
    end)

    it("keeps Azure's content-filter annotations in the reply, not in the callback's chunks", function ()
      local seen = 0
      local res = assert(client:chat(fault("content-filter", { stream = function (_, chunk)
        seen = seen + 1
        assert.equal("chat.completion.chunk", chunk.object)
      end })))
      assert.truthy(seen > 0)
      assert.is_false(res.prompt_filter_results[1].content_filter_results.hate.filtered)
      assert.equal("chat.completion", res.object)
      assert.matches("^chatcmpl", res.id)   -- (not the annotation's "")
    end)

    for _, wire in ipairs { "crlf", "cr", "comments", "no-space", "multiline", "byte-writes" } do
      it("reads the same stream with " .. wire, function ()
        local plain = assert(client:chat { messages = USER, stream = true })
        local odd = assert(client:chat(fault(wire, { stream = true })))
        assert.same(comparable(plain), comparable(odd))
      end)
    end

    it("passes the chunk only to callbacks that take it", function ()
      local got_one, got_two
      assert(client:chat { messages = USER, stream = function (...) got_one = select("#", ...) end })
      assert(client:chat { messages = USER, stream = function (_, chunk) got_two = chunk end })
      assert.equal(2, got_one)   -- a vararg function is given both
      assert.is_table(got_two)
    end)

    it("streams with stream = true and no function", function ()
      local res = assert(client:chat { messages = USER, stream = true })
      assert.matches("robot", res.text:lower())
      assert.is_true(srv:last().body_json.stream)
    end)
  end)

  describe("completions", function ()
    for _, n in ipairs { 1, 3 } do
      it("accumulates exactly the non-streamed response, n = " .. n, function ()
        local params = { prompt = "Generate a short story about a robot that learns to paint.",
                         max_tokens = 40, n = n, seed = 3 }
        local plain = assert(client:complete(params))
        local deltas = {}
        params.stream = function (delta) deltas[#deltas + 1] = delta end
        local streamed = assert(client:complete(params))
        assert.same(comparable(plain), comparable(streamed))
        assert.equal("text_completion", streamed.object)
        if n == 1 then assert.equal(streamed.text, table.concat(deltas)) end
      end)
    end
  end)

  describe("the iterator form", function ()
    it("yields deltas and keeps the result", function ()
      local s = client:stream { messages = USER }
      local parts = {}
      for delta, chunk in s do
        parts[#parts + 1] = delta
        assert.is_table(chunk)
      end
      local res = assert(s:result())
      assert.equal(res.text, table.concat(parts))
    end)

    it("a stream already ended cannot be canceled: cancel() says false, what arrived is still given", function ()
      local s = client:stream { messages = USER }
      while s.request:status() == "running" do client:step(0.01) end
      assert.equal("done", s.request:status())
      assert.is_false(s:cancel())
      s:close()
      assert.equal("done", s.request:status())
      local parts = {}
      for delta in s do parts[#parts + 1] = delta end
      assert.equal(assert(s:result()).text, table.concat(parts))
      assert.truthy(#parts > 1)
    end)

    it("streams completions when given a prompt", function ()
      local parts = {}
      for delta in client:stream { prompt = "Once upon a time", max_tokens = 8 } do parts[#parts + 1] = delta end
      assert.truthy(#table.concat(parts) > 0)
      assert.equal("/v1/completions", srv:last().path)
    end)

    it("cancels the request when the loop is left early", function ()
      if not HAS_CLOSE then
        pending("needs Lua 5.4: the generic for's closing value cancels on break (elsewhere s:close(): README)")
        return
      end
      srv:reset()
      if HAS_CLOSE then
        for _ in client:stream(fault("pause=20")) do break end   -- luacheck: ignore 512
      else   -- (no closing value before 5.4: the README's explicit form)
        local s = client:stream(fault("pause=20"))
        for _ in s do break end   -- luacheck: ignore 512
        s:close()
      end
      local deadline = os.time() + 5
      while srv:stats().client_closed_total < 1 and os.time() < deadline do end
      assert.equal(1, srv:stats().client_closed_total)
    end)

    it("cancels the request when a <close> stream goes out of scope (Lua 5.4; s:close() elsewhere)", function ()
      local kept
      with_close(client:stream(fault("pause=20")), "close", function (s)
        kept = s
        for _ in s do break end   -- luacheck: ignore 512
        assert.equal("running", s.request:status())
      end)
      assert.equal("canceled", kept.request:status())
      local _, err = kept:result()
      assert.equal("canceled", err.kind)
    end)

    -- Issue 10, defect 16: the README's form must cancel on break. It is
    -- tested here exactly as the README writes it.
    it("the README's form: `for delta, chunk in s:deltas()` cancels the request on break", function ()
      if not HAS_CLOSE then
        pending("needs Lua 5.4: the generic for's closing value cancels on break (elsewhere s:close(): README)")
        return
      end
      srv:reset()
      local msgs = USER
      local seen = {}
      local io = { write = function (d) seen[#seen + 1] = d end }   -- (the README writes to stdout)
      local s = client:stream { messages = msgs, headers = { ["x-aigc-fault"] = "pause=20" } }
      for delta, chunk in s:deltas() do io.write(delta) break end   -- luacheck: ignore 512 213
      if not HAS_CLOSE then s:close() end   -- (before 5.4 the README says: s:close() after a break)
      assert.equal(1, #seen)
      assert.equal("canceled", s.request:status())
      local res, err = s:result()
      assert.is_nil(res)
      assert.equal("canceled", err.kind)
      local deadline = os.time() + 5
      while srv:stats().client_closed_total < 1 and os.time() < deadline do end
      assert.equal(1, srv:stats().client_closed_total)
      -- run to its end, the same form gives the accumulated result
      local s2 = client:stream { messages = USER }
      local parts = {}
      for delta in s2:deltas() do parts[#parts + 1] = delta end
      assert.equal(table.concat(parts), assert(s2:result()).text)
    end)

    it("`for d in s` has no closing value: after a break, s:close() cancels", function ()
      srv:reset()
      local s = client:stream(fault("pause=20"))
      for _ in s do break end   -- luacheck: ignore 512
      assert.equal("running", s.request:status())   -- (what the README says: this form needs close)
      s:close()
      assert.equal("canceled", s.request:status())
      local deadline = os.time() + 5
      while srv:stats().client_closed_total < 1 and os.time() < deadline do end
      assert.equal(1, srv:stats().client_closed_total)
      local s2 = client:stream(fault("pause=20"))
      assert.is_true(s2:cancel("enough"))
      assert.is_false(s2:cancel())
      assert.equal("enough", select(2, s2:result()).message)
    end)

    it("delivers nothing after cancel, not even deltas that had arrived", function ()
      local s = client:stream(fault("pause=5"))
      local got = {}
      local ok, err = pcall(function ()
        for d in s:deltas() do
          got[#got + 1] = d
          if #got == 1 then
            client:step(0.2)   -- (more deltas arrive and wait in the iterator's buffer)
            s:cancel()
          end
        end
      end)
      assert.is_false(ok)
      assert.equal("canceled", err.kind)
      assert.equal(1, #got)
    end)

    it("refuses a toolset or a schema, which need client:chat", function ()
      local tools = aigc.tools { { name = "t", fn = function () return 1 end } }
      assert.has_error(function () client:stream { messages = USER, tools = tools } end,
        "bad argument #1 to 'stream' (a toolset or a schema needs client:chat { ..., stream = function (delta) end })")
      assert.has_error(function () client:stream { messages = USER, schema = { type = "object" } } end)
      assert.equal(0, client:active())
    end)

    it("raises the error object when the stream fails", function ()
      local ok, err = pcall(function ()
        for _ in client:stream(fault("error-event")) do end
      end)
      assert.is_false(ok)
      assert.truthy(aigc.is_error(err))
      assert.equal("api", err.kind)
    end)
  end)

  describe("failures", function ()
    local function stream_fails (spec, extra)
      local p = fault(spec, extra)
      if p.stream == nil then p.stream = true end
      local res, err = client:chat(p)
      assert.is_nil(res)
      assert.truthy(aigc.is_error(err), tostring(err))
      -- the client stays usable
      assert(client:chat { messages = USER, stream = true })
      return err
    end

    it("reports an error event (kind api) with its message and request id", function ()
      local err = stream_fails("error-event")
      assert.equal("api", err.kind)
      assert.equal("The server had an error while processing your request.", err.message)
      assert.equal("server_error", err.type)
      assert.matches("^req_", err.request_id)
      assert.is_table(err.partial)
    end)

    it("reports a data object with an error member (kind api)", function ()
      local err = stream_fails("error-data")
      assert.equal("api", err.kind)
      assert.is_string(err.message)
    end)

    it("reports a stream that ends without [DONE] as incomplete, with the partial result", function ()
      local err = stream_fails("no-done")
      assert.equal("stream", err.kind)
      assert.matches("incomplete", err.message)
      assert.matches("robot", err.partial.choices[1].message.content:lower())
    end)

    it("takes it whole, with require_done = false, when it ended properly after its finish_reason", function ()
      local lax = aigc.client { base_url = srv.base_url, model = "aigc-dev", max_retries = 0, require_done = false }
      local res = assert(lax:chat(fault("no-done", { stream = true })))
      assert.matches("robot", res.text:lower())
      assert.equal("stop", res.choices[1].finish_reason)
      -- (cut before its finish_reason: incomplete all the same)
      local none, err = lax:chat(fault("no-done,no-finish-reason", { stream = true }))
      assert.is_nil(none)
      assert.equal("stream", err.kind)
      lax:close()
    end)

    it("reports a dropped connection mid-stream", function ()
      local err = stream_fails("drop-after=5")
      assert.equal("stream", err.kind)
      assert.is_table(err.partial)
      assert.is_string(err.partial.choices[1].message.content)
    end)

    it("reports a choice without finish_reason as incomplete", function ()
      local err = stream_fails("no-finish-reason")
      assert.equal("stream", err.kind)
      assert.matches("finish_reason", err.message)
      assert.is_table(err.partial)
    end)

    it("reports a malformed chunk (kind parse)", function ()
      local err = stream_fails("malformed-chunk")
      assert.equal("parse", err.kind)
      assert.matches("not valid JSON", err.message)
    end)

    it("fails with kind callback when the callback raises, keeping the traceback", function ()
      local calls = 0
      local err = stream_fails("pause=1", { stream = function ()
        calls = calls + 1
        if calls == 3 then error("boom in my callback") end
      end })
      assert.equal("callback", err.kind)
      assert.matches("boom in my callback", err.message)
      assert.matches("stack traceback", err.traceback)
      assert.equal(3, calls)   -- nothing delivered after the error
    end)

    it("closes the connection when a callback fails mid-stream", function ()
      srv:reset()
      local _, err = client:chat(fault("pause=20", { stream = function () error("stop") end }))
      assert.equal("callback", err.kind)
      local deadline = os.time() + 5
      while srv:stats().client_closed_total < 1 and os.time() < deadline do end
      assert.equal(1, srv:stats().client_closed_total)
    end)
  end)

  -- on_stream_end(res): a stream's last word, once it has ended well and
  -- before the request is done (aigc.sentences gives its last sentence
  -- there), so that what it does still decides the call's end.
  describe("on_stream_end", function ()
    it("runs once, after the last delta and before on_done, with the result, the request still running", function ()
      local order, req, seen_res = {}, nil, nil
      req = client:chat_async { messages = USER,
        stream = function (d) if d and order[#order] ~= "delta" then order[#order + 1] = "delta" end end,
        on_stream_end = function (res)
          seen_res = res
          order[#order + 1] = "end:" .. req:status()
        end,
        on_done = function () order[#order + 1] = "on_done" end }
      local res = assert(req:wait())
      assert.same({ "delta", "end:running", "on_done" }, order)
      assert.equal(res, seen_res)
      -- blocking, and on the iterator form
      local n = 0
      assert(client:chat { messages = USER, stream = true, on_stream_end = function () n = n + 1 end })
      local s = client:stream { messages = USER, on_stream_end = function () n = n + 1 end }
      for _ in s:deltas() do end
      assert.equal(2, n)
    end)

    it("a raise there fails the call with kind callback: on_error, never on_done", function ()
      local ends = {}
      local req = client:chat_async { messages = USER, stream = true,
        on_stream_end = function () error("the speaker is gone") end,
        on_done = function () ends[#ends + 1] = "on_done" end,
        on_error = function (e) ends[#ends + 1] = e.kind end }
      local res, err = req:wait()
      assert.is_nil(res)
      assert.equal("callback", err.kind)
      assert.matches("the speaker is gone", err.message)
      assert.same({ "callback" }, ends)
      assert.equal("failed", req:status())
      local r2, e2 = client:chat { messages = USER, stream = true, on_stream_end = function () error({}) end }
      assert.is_nil(r2)
      assert.equal("callback", e2.kind)
    end)

    it("a cancel or a close there ends the call so", function ()
      local ends, req = {}, nil
      req = client:chat_async { messages = USER, stream = true,
        on_stream_end = function () req:cancel() end,
        on_done = function () ends[#ends + 1] = "on_done" end,
        on_error = function (e) ends[#ends + 1] = e.kind end }
      while client:step(0.01) > 0 do end
      assert.equal("canceled", req:status())
      assert.same({ "canceled" }, ends)
      local res, err = client:chat { messages = USER, stream = true, on_stream_end = function () client:close() end }
      assert.is_nil(res)
      assert.equal("canceled", err.kind)
    end)

    it("is not heard when the stream fails, nor by a call that does not stream", function ()
      local n = 0
      local function count () n = n + 1 end
      local res, err = client:chat(fault("no-done", { stream = true, on_stream_end = count }))
      assert.is_nil(res)
      assert.equal("stream", err.kind)
      res = client:chat(fault("status=500", { stream = true, on_stream_end = count, max_retries = 0 }))
      assert.is_nil(res)
      assert(client:chat { messages = USER, on_stream_end = count })
      assert.equal(0, n)
    end)

    it("follows the one delta of a server that answered a stream in one piece", function ()
      local order = {}
      local res = assert(client:chat(fault("plain-for-stream", {
        stream = function (d) order[#order + 1] = "delta:" .. #d end,
        on_stream_end = function (r) order[#order + 1] = "end:" .. #r.text end })))
      assert.same({ "delta:" .. #res.text, "end:" .. #res.text }, order)
    end)

    it("must be a function", function ()
      assert.has_error(function () client:chat { messages = USER, stream = true, on_stream_end = 1 } end,
        "bad argument #1 to 'chat' (params.on_stream_end: function expected, got number)")
    end)
  end)

  describe("callbacks", function ()
    it("may start another request, blocking or not", function ()
      local inner, inner_async
      local res = assert(client:chat { messages = USER, stream = function (delta)
        if delta and not inner then
          inner = assert(client:chat "What is the capital of France?")
          inner_async = client:chat_async "Hello"
        end
      end })
      assert.matches("robot", res.text:lower())
      assert.equal("The capital of France is Paris.", inner.text)
      local r2 = assert(inner_async:wait())
      assert.is_string(r2.text)
    end)

    it("may close the client", function ()
      local res, err = client:chat(fault("pause=5", { stream = function () client:close() end }))
      assert.is_nil(res)
      assert.equal("canceled", err.kind)
      assert.has_error(function () client:chat "x" end, "attempt to use a closed client")
    end)

    it("may raise an error object whose __tostring raises or returns no string: nil, err (kind callback)", function ()
      local objects = {
        setmetatable({}, { __tostring = function () error("no string for you") end }),
        setmetatable({}, { __tostring = function () return nil end }),
        setmetatable({}, { __tostring = function () return {} end }),
      }
      for _, obj in ipairs(objects) do
        for _, where in ipairs { "stream", "on_stream_end" } do
          local p = { messages = USER, stream = function () end }
          p[where] = function () error(obj) end
          local ok, res, err = pcall(client.chat, client, p)
          assert.is_true(ok, tostring(res))   -- (it raised "no string for you" out of the blocking call)
          assert.is_nil(res)
          assert.equal("callback", err.kind)
          assert.equal("(a table value whose __tostring failed)", err.message)
        end
      end
      assert(client:chat "still usable")
    end)
  end)
end)
