-- A list with a hole (`{ a, nil, c }`, or an item set to nil by a script
-- that filters a list in place): read with ipairs, everything after the hole
-- was dropped without a word -- a toolset without its later tools, a run
-- without its later cases, a fallback without its later entries, a
-- conversation without its later messages -- where a request's own lists
-- (`stop`, `input`, `messages`) are refused by the encoder. Each is now a
-- misuse error naming the list, and nothing is sent.

local aigc = require "aigc"
local devserver = require "devserver"

local function holed (a, c)
  local t = { a }
  t[3] = c
  return t
end

local function count_requests (srv)
  return #srv:requests()
end

describe("a list with a hole", function ()
  local srv, client
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })

  local function refused (fname, f, want, argn)
    local before = count_requests(srv)
    local ok, err = pcall(f)
    assert.is_false(ok, fname .. " accepted a list with a hole")
    assert.matches("bad argument #" .. (argn or 1) .. " to '" .. fname .. "' (" .. want, tostring(err), 1, true)
    assert.equal(before, count_requests(srv), "nothing is sent")
  end

  it("aigc.tools: refused, naming the list (was: a toolset without the tools after the hole)", function ()
    local list = holed({ name = "one", fn = function () return "1" end },
                       { name = "three", fn = function () return "3" end })
    refused("tools", function () return aigc.tools(list) end, "tools: sparse array: [2] is nil, [3] is not)")
  end)

  it("strategy.fallback and race: refused (was: the entries after the hole never tried)", function ()
    local spec = holed({ client = client, model = "fault:status=400" }, { client = client })
    spec.params = { messages = { { role = "user", content = "Echo: hi" } } }
    local want = "spec: sparse array: [2] is nil, [3] is not)"
    refused("fallback", function () return aigc.strategy.fallback(spec) end, want)
    refused("race", function () return aigc.strategy.race(spec) end, want)
  end)

  it("runner.run's cases: refused (was: a run of the cases before the hole, said to be whole)", function ()
    local out = os.tmpname()
    os.remove(out)
    local cases = holed({ id = "a", messages = { { role = "user", content = "Echo: a" } } },
                        { id = "c", messages = { { role = "user", content = "Echo: c" } } })
    refused("run", function () return aigc.runner.run { client = client, cases = cases, out = out } end,
            "spec.cases: sparse array: [2] is nil, [3] is not)")
    local f = io.open(out, "rb")
    if f then f:close(); os.remove(out) end
    assert.is_nil(f, "no results file is made")
  end)

  -- README: "A message no request can carry ... is refused where it enters:
  -- `add`, `messages =` and a say's message raise"
  it("aigc.conversation's messages: refused where they enter (was: the messages after the hole dropped)", function ()
    local msgs = holed({ role = "user", content = "Echo: one" }, { role = "user", content = "Echo: three" })
    refused("conversation", function () return aigc.conversation { client = client, messages = msgs } end,
            "opts.messages: sparse array")
  end)

  it("a multipart call's list fields (image[], timestamp_granularities[]): refused (was: the first sent)", function ()
    local images = holed({ data = "one", filename = "a.png" }, { data = "three", filename = "c.png" })
    refused("images_edit", function () return client:images_edit { image = images, prompt = "add a hat" } end,
            "params.image: sparse array: [2] is nil, [3] is not)")
    refused("transcribe", function ()
      return client:transcribe { file = { data = "AIGC-TEXT: hi", filename = "a.wav" },
                                 response_format = "verbose_json", timestamp_granularities = holed("word", "segment") }
    end, "params.timestamp_granularities: sparse array: [2] is nil, [3] is not)")
  end)

  it("aigc.batch's requests: refused (was: a batch of the requests before the hole)", function ()
    local function req (id)
      local messages = { { role = "user", content = "Echo: " .. id } }
      return { custom_id = id, body = { model = "aigc-dev", messages = messages } }
    end
    local requests = holed(req("a"), req("c"))
    local want = "requests: sparse array: [2] is nil, [3] is not)"
    refused("create", function () return aigc.batch.create(client, requests) end, want, 2)
    refused("jsonl", function () return aigc.batch.jsonl(requests) end, want)
  end)

  it("the same lists without a hole work as before", function ()
    local ts = aigc.tools { { name = "one", fn = function () return "1" end },
                            { name = "two", fn = function () return "2" end } }
    assert.equal(2, ts:count())
    local conv = aigc.conversation { client = client, messages = { { role = "user", content = "Echo: one" },
                                                                     { role = "assistant", content = "one" } } }
    assert.equal(2, #conv.messages)
    local res = assert(aigc.strategy.fallback { params = { messages = { { role = "user", content = "Echo: hi" } } },
                                                { client = client, model = "fault:status=400" }, { client = client } })
    assert.equal("hi", res.text)
  end)
end)
