-- The stored responses' queries: a list (include) sent as the SDKs send
-- it, and client:response_input_items_all walking the input items' pages.
-- Against the bundled server, and a one-shot server (spec/support/oneshot.lua)
-- that records the request lines or answers with the same page each time.
local aigc = require "aigc"
local devserver = require "devserver"
local oneshot = require "oneshot"

-- (child) Answers arg[2] requests with the JSON body in the file arg[3]
-- (200), writing each request line to the file arg[1].
local PAGES = [[
  local oneshot = require "oneshot"
  local out = assert(io.open(arg[1], "w"))
  local body = assert(io.open(arg[3], "rb")):read("*a")
  local server = oneshot.listen()
  for _ = 1, tonumber(arg[2]) do
    local c = assert(server:accept())
    c:settimeout(5)
    local line = c:receive("*l")
    out:write(line, "\n")
    out:flush()
    repeat local l = c:receive("*l") until l == "" or l == nil
    c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body
           .. "\r\nConnection: close\r\n\r\n" .. body)
    c:close()
  end
  out:close()
]]

-- A client to a child answering `n` requests with `body`; done() gives the request lines.
local function pages_client (n, body, api_key)
  local lines, path = os.tmpname(), os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(body)
  f:close()
  local port, child = oneshot.start(PAGES, { lines, tostring(n), path })
  local c = aigc.client { base_url = "http://127.0.0.1:" .. port .. "/v1", max_retries = 0, model = "m",
                         api_key = api_key }
  return c, function ()
    c:close()
    child:wait(10)
    local got = {}
    for line in io.lines(lines) do got[#got + 1] = line end
    os.remove(lines)
    os.remove(path)
    return got
  end
end

describe("Responses queries", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })

  it("a list goes as the SDKs send it (include[]=a&include[]=b), a string as include=a", function ()
    local c, done = pages_client(3, '{"object":"list","data":[],"has_more":false}')
    c:get_response("resp_1", { include = { "reasoning.encrypted_content", "message.output_text.logprobs" } })
    c:response_input_items("resp_1", { include = { "a" }, limit = 5 })
    c:get_response("resp_1", { include = "reasoning.encrypted_content" })
    local lines = done()
    assert.equal("GET /v1/responses/resp_1?include%5B%5D=reasoning.encrypted_content"
                 .. "&include%5B%5D=message.output_text.logprobs HTTP/1.1", lines[1])
    assert.equal("GET /v1/responses/resp_1/input_items?include%5B%5D=a&limit=5 HTTP/1.1", lines[2])
    assert.equal("GET /v1/responses/resp_1?include=reasoning.encrypted_content HTTP/1.1", lines[3])
  end)

  describe("response_input_items_all", function ()
    local INPUT = {}
    for i = 1, 5 do INPUT[i] = { role = "user", content = "message " .. i } end

    it("follows has_more with after = last_id, page after page", function ()
      local res = assert(client:respond { input = INPUT })
      local all = assert(client:response_input_items_all(res.id, { order = "asc", limit = 2 }))
      assert.equal(5, #all.data)
      for i = 1, 5 do assert.equal("message " .. i, all.data[i].content[1].text) end
      assert.equal(3, all.pages)
      assert.is_false(all.has_more)
      assert.equal(all.data[1].id, all.first_id)
      assert.equal(all.data[5].id, all.last_id)
      local reqs = srv:requests()
      local last = reqs[#reqs]
      assert.equal(all.data[4].id, last.query.after)
      assert.equal("2", last.query.limit)
      assert.is_nil(last.query.max_pages)
    end)

    it("more pages than max_pages: kind limit, with the items got so far", function ()
      local res = assert(client:respond { input = INPUT })
      local all, err = client:response_input_items_all(res.id, { order = "asc", limit = 2, max_pages = 2 })
      assert.is_nil(all)
      assert.equal("limit", err.kind)
      assert.matches("more than 2 pages", err.message)
      assert.equal(4, #err.data)
      assert.error_matches(function () client:response_input_items_all(res.id, { max_pages = 0 }) end,
        "bad argument #2 to 'response_input_items_all' %(opts.max_pages: integer >= 1 expected")
    end)

    it("an error's items got so far (err.data) are scrubbed of the key, as the rest of the error", function ()
      local key = "sk-audit2-0123456789abcdefghij"
      local c, done = pages_client(2, '{"object":"list","data":[{"id":"it_1","type":"message","content":'
                                      .. '[{"type":"input_text","text":"why is ' .. key .. ' refused?"}]}],'
                                      .. '"first_id":"it_1","last_id":"it_1","has_more":true}', key)
      local all, err = c:response_input_items_all("resp_1")
      done()
      assert.is_nil(all)
      assert.equal("parse", err.kind)
      assert.equal(2, #err.data)
      assert.equal("why is [redacted] refused?", err.data[1].content[1].text)
    end)

    it("misuse names response_input_items_all, not the call it makes per page", function ()
      assert.error_matches(function () client:response_input_items_all(123) end,
        "bad argument #1 to 'response_input_items_all' %(a response id expected, got number%)")
      assert.error_matches(function () client:response_input_items_all("resp_1", { after = print }) end,
        "bad argument #2 to 'response_input_items_all' %(opts.after")
    end)

    it("a server's error: returned, with the items got so far", function ()
      local all, err = client:response_input_items_all("resp_unknown")
      assert.is_nil(all)
      assert.equal(404, err.status)
      assert.same({}, err.data)
    end)

    it("a server that ignores after (the same page again): kind parse, bounded", function ()
      local c, done = pages_client(2, '{"object":"list","data":[{"id":"it_1","type":"message"}],'
                                      .. '"first_id":"it_1","last_id":"it_1","has_more":true}')
      local all, err = c:response_input_items_all("resp_1")
      local lines = done()
      assert.is_nil(all)
      assert.equal("parse", err.kind)
      assert.matches("cursor %(it_1%) was given before", err.message)
      assert.equal(2, #lines)
      assert.equal("GET /v1/responses/resp_1/input_items?after=it_1 HTTP/1.1", lines[2])
    end)

    it("has_more with no cursor: kind parse", function ()
      local c, done = pages_client(1, '{"object":"list","data":[],"has_more":true}')
      local all, err = c:response_input_items_all("resp_1")
      done()
      assert.is_nil(all)
      assert.equal("parse", err.kind)
      assert.matches("has_more but gives no cursor", err.message)
    end)
  end)
end)
