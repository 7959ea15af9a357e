-- Error bodies of odd shapes (response.c: an error's members, FastAPI's
-- "detail", Azure's filtered choices), as a server sends them over real
-- HTTP on loopback (a one-shot server, spec/support/oneshot.lua): numbers
-- where strings are usual, a detail without text, locations of every type,
-- choices without a verdict. Each must give a plain error, never raise.
local aigc = require "aigc"
local oneshot = require "oneshot"

describe("an HTTP 400 whose body", function ()
  it("has odd members, details and choices is a plain http error from what it has", function ()
    local bodies = {
      '{"error":{"message":"bad","code":1.5,"param":2.25}}',
      '{"detail":[{"msg":5,"loc":["body"]}]}',
      '{"detail":[{"msg":"field required","loc":["body",true,3,"x"]}]}',
      '{"choices":[]}',
      '{"choices":[{"finish_reason":null,"content_filter_results":{}}]}',
    }
    local replies = {}
    for i, b in ipairs(bodies) do replies[i] = oneshot.http_reply("400 Bad Request", b) end
    local c = aigc.client { base_url = oneshot.serve_raw(replies, finally), max_retries = 0 }
    local errs = {}
    for i = 1, #bodies do
      local res, err = c:chat { model = "m", messages = { { role = "user", content = "x" } } }
      errs[i] = res == nil and err or { kind = "no error" }
    end
    c:close()
    for i = 1, #bodies do
      assert.are.equal("http", errs[i].kind)
      assert.are.equal(400, errs[i].status)
      assert.are.same(aigc.json.decode(bodies[i]), errs[i].body)   -- (the reply, parsed)
    end
    assert.are.equal("bad", errs[1].message)
    assert.are.equal(1.5, errs[1].code)
    assert.are.equal(2.25, errs[1].param)
    assert.are.equal("HTTP status 400", errs[2].message)   -- (a detail with no text: none taken)
    assert.are.equal("field required (body.3.x)", errs[3].message)   -- (a boolean in loc: left out)
    assert.are.equal("HTTP status 400", errs[4].message)
    assert.are.equal("HTTP status 400", errs[5].message)
  end)
end)
