-- A resumed Responses stream on a cassette: `client:get_response(id,
-- { stream = ..., starting_after = n })` is a GET with no body, and was
-- keyed (and labelled in the tape) as `POST /responses/{id}?... {"model":
-- ..., "stream": true}`, a body never sent. Its key is the GET and its path
-- now, and the tape still replays, through the recording proxy and with
-- `proxy = false`; a file's DELETE is keyed as what it is too.

local aigc = require "aigc"
local devserver = require "devserver"
local cli = require "cli"

local STORY = "Generate a short story about a robot that learns to paint."

-- The keys of a tape, in order.
local function keys_of (path)
  local keys = {}
  for line in io.lines(path) do keys[#keys + 1] = aigc.json.decode(line).key end
  return keys
end

-- A background response, its whole stream, then the stream resumed after
-- event 3: the events each time (sequence numbers) and the resumed result.
local function session (c)
  local started = assert(c:respond { input = STORY, background = true })
  local whole, resumed = {}, {}
  assert(c:get_response(started.id, { stream = function (_, e) whole[#whole + 1] = e.sequence_number end }))
  local res = assert(c:get_response(started.id, {
    starting_after = 3, stream = function (_, e) resumed[#resumed + 1] = e.sequence_number end }))
  return { id = started.id, whole = whole, resumed = resumed, status = res.status, text = res.output_text }
end

describe("cassettes: a resumed Responses stream", function ()
  local dir
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  for _, proxy in ipairs { true, false } do
    it("is keyed GET /responses/ID?starting_after=N&stream=true, no body; the tape replays (proxy = "
       .. tostring(proxy) .. ")", function ()
      local path = dir .. "/resume.jsonl"
      local srv = devserver.start()
      local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev",
                                cassette = { path = path, mode = "record", proxy = proxy } }
      local live = session(rec)
      rec:close()
      srv:stop()
      assert.equal("completed", live.status)
      assert.equal(4, live.resumed[1])
      assert.equal(#live.whole - 4, #live.resumed)
      local keys = keys_of(path)
      assert.equal(3, #keys)
      assert.matches("^POST /responses {", keys[1])
      assert.equal("GET /responses/" .. live.id .. "?stream=true", keys[2])
      assert.equal("GET /responses/" .. live.id .. "?starting_after=3&stream=true", keys[3])

      local c = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev",
                              cassette = { path = path, mode = "replay" } }
      local again = session(c)
      c:close()
      assert.same(live, again)
    end)
  end

  it("a DELETE is keyed DELETE, not as the GET of the same file or response", function ()
    local path = dir .. "/files.jsonl"
    local srv = devserver.start()
    local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev",
                              cassette = { path = path, mode = "record" } }
    local f = assert(rec:files_upload { file = { data = "{}\n", filename = "a.jsonl" }, purpose = "batch" })
    assert.equal(f.id, assert(rec:files_retrieve(f.id)).id)
    assert.is_true(assert(rec:files_delete(f.id)).deleted)
    rec:close()
    srv:stop()
    local keys = keys_of(path)
    assert.equal("GET /files/" .. f.id, keys[2])
    assert.equal("DELETE /files/" .. f.id, keys[3])
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev",
                            cassette = { path = path, mode = "replay" } }
    assert(c:files_upload { file = { data = "{}\n", filename = "a.jsonl" }, purpose = "batch" })
    -- (replayed in either order, each call gets its own exchange: one key for both played the GET twice)
    assert.is_true(assert(c:files_delete(f.id)).deleted)
    assert.equal(f.id, assert(c:files_retrieve(f.id)).id)
    c:close()
    -- (client:delete_response's call names no method: its api does)
    local cassette = require "aigc.cassette"
    assert.equal("DELETE /responses/resp_1", cassette.key("delete", nil, "/responses/resp_1"))
    assert.equal("GET /responses/resp_1", cassette.key("get", nil, "/responses/resp_1"))
  end)
end)
