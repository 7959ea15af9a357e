-- Embeddings, moderation, vectors and files probed over real HTTP on
-- loopback: replies the bundled server does not give come from the
-- scripted server (spec/support/scripted.lua); the rest from the bundled one.
local aigc = require "aigc"
local scripted = require "scripted"
local devserver = require "devserver"
local portable = require "portable"
local cjson = require "cjson"
local b64 = require "b64"

-- Little-endian float32 bytes of 1 and 2 (no string.pack on 5.1).
local ONE, TWO = "\0\0\128\63", "\0\0\0\64"

local function json (t) return "json " .. cjson.encode(t) end

local function client_of (srv)
  return aigc.client { base_url = srv.base_url, api_key = "sk-probe-SECRET", max_retries = 0, model = "m" }
end

local function embedding_list (items)
  return json { object = "list", model = "m", data = items }
end

local function item (index, embedding) return { object = "embedding", index = index, embedding = embedding } end

describe("embeddings: one per input", function ()
  -- (a server that dropped an input: indexes 0 and 2 for 3 inputs gave
  -- res.data[2] = the third input's vector, stored as the second's)
  it("a reply with fewer embeddings than inputs, or indexes not 0..n-1 each once, is a parse error", function ()
    local srv = scripted.start {
      embedding_list { item(0, b64(ONE)), item(2, b64(TWO)) },
      embedding_list { item(0, b64(ONE)), item(1, b64(TWO)) },
      embedding_list { item(1, { 1 }), item(1, { 2 }) },
      embedding_list { item(0, { 1 }), item(5, { 2 }) },
    }
    local c = client_of(srv)
    local res, err = c:embeddings { input = { "a", "b", "c" } }
    assert.is_nil(res)
    assert.equal("parse", err.kind)
    assert.matches("2 embedding%(s%) for 3 input%(s%)", err.message)
    res, err = c:embeddings { input = { "a", "b", "c" } }
    assert.is_nil(res)
    assert.matches("2 embedding%(s%) for 3 input%(s%)", err.message)
    res, err = c:embeddings { input = { "a", "b" }, encoding_format = "float" }
    assert.is_nil(res)
    assert.equal("parse", err.kind)
    assert.matches("data%[2%]%.index: one of 0%.%.1 %(each once%) expected, got 1", err.message)
    res, err = c:embeddings { input = { "a", "b" }, encoding_format = "float" }
    assert.is_nil(res)
    assert.matches("data%[2%]%.index: one of 0%.%.1 %(each once%) expected, got 5", err.message)
    assert.not_matches("SECRET", tostring(err))
    c:close()
    assert.equal(4, #srv.finish())
  end)

  it("a list of tokens is one input, a list of token lists one each; a lone one's index is free", function ()
    local srv = scripted.start {
      embedding_list { item(7, b64(ONE)) },   -- (one embedding for one input: its index cannot mislead)
      embedding_list { item(1, b64(TWO)), item(0, b64(ONE)) },
    }
    local c = client_of(srv)
    local res = assert(c:embeddings { input = { 15339, 1917 } })
    assert.same({ 1 }, res.data[1].embedding)
    res = assert(c:embeddings { input = { { 15339 }, { 1917, 11 } } })
    assert.same({ { 1 }, { 2 } }, { res.data[1].embedding, res.data[2].embedding })
    c:close()
    local sent = srv.finish()
    assert.same({ 15339, 1917 }, sent[1].input)
    assert.same({ { 15339 }, { 1917, 11 } }, sent[2].input)
  end)
end)

describe("embeddings: elements", function ()
  -- (vec.index's add raised on them later, far from the reply)
  it("a string or a boolean element, or an object for an embedding, is a parse error naming it", function ()
    local srv = scripted.start {
      embedding_list { item(0, { 0.5, "0.25" }) },
      embedding_list { item(0, { true }) },
      embedding_list { item(0, { a = 1 }) },
    }
    local c = client_of(srv)
    local res, err = c:embeddings { input = "x" }
    assert.is_nil(res)
    assert.equal("parse", err.kind)
    assert.matches("embedding 1: element 2 is a string", err.message)
    res, err = c:embeddings { input = "x", encoding_format = "float" }
    assert.is_nil(res)
    assert.matches("embedding 1: element 1 is a boolean", err.message)
    res, err = c:embeddings { input = "x" }
    assert.is_nil(res)
    assert.matches("embedding 1: a list of numbers expected, got an object", err.message)
    c:close()
    assert.equal(3, #srv.finish())
  end)
end)

describe("moderation: one result per input", function ()
  -- (a pre-filter read a reply without a result for an input, or with
  -- "flagged": "yes", as "not flagged": the input went on to the chat)
  it("fewer results than inputs, or a flagged that is not a boolean, is a parse error", function ()
    local srv = scripted.start {
      json { id = "m", model = "m", results = { { flagged = false, categories = { violence = false } } } },
      json { id = "m", model = "m", results = {} },
      json { id = "m", model = "m", results = { { flagged = "yes" } } },
    }
    local c = client_of(srv)
    local res, err = c:moderate { input = { "I will kill you", "where is my parcel?" } }
    assert.is_nil(res)
    assert.equal("parse", err.kind)
    assert.matches("1 result%(s%) for 2 input%(s%)", err.message)
    res, err = c:moderate("hello")
    assert.is_nil(res)
    assert.matches("0 result%(s%) for 1 input%(s%)", err.message)
    res, err = c:moderate("hello")
    assert.is_nil(res)
    assert.matches("results%[1%]%.flagged: a boolean expected, got a string", err.message)
    assert.not_matches("SECRET", tostring(err))
    c:close()
    assert.equal(3, #srv.finish())
  end)

  it("multi-modal parts are one input; a result without categories is read by its flagged", function ()
    local srv = scripted.start {
      json { id = "m", model = "m", results = { { flagged = true } } },
    }
    local c = client_of(srv)
    local res = assert(c:moderate { input = { { type = "text", text = "look" },
                                              { type = "image_url", image_url = { url = "https://x.test/a.png" } } } })
    assert.is_true(res.flagged)
    assert.same({}, res.flagged_categories)
    c:close()
    assert.equal("image_url", srv.finish()[1].input[2].type)
  end)
end)

describe("against the bundled server", function ()
  local srv, c
  setup(function ()
    srv = devserver.start { pause_ms = 0 }
    c = aigc.client { base_url = srv.base_url, api_key = "sk-probe-SECRET", max_retries = 0,
                      model = "text-embedding-3-small" }
  end)
  teardown(function ()
    c:close()
    srv:stop()
  end)

  it("base64 by default decodes bit for bit as the float32 bytes the server sent", function ()
    local res = assert(c:embeddings { input = { "the inn", "the smithy" }, dimensions = 64 })
    local raw = assert(c:embeddings { input = { "the inn", "the smithy" }, dimensions = 64,
                                      encoding_format = "base64" })
    for i = 1, 2 do
      local bytes = portable.b64decode(raw.data[i].embedding)
      assert.equal(64 * 4, #bytes)
      local v = res.data[i].embedding
      assert.equal(64, #v)
      for j = 1, 64 do assert.equal(portable.float32_le(bytes, 4 * j - 3), v[j]) end
    end
    local reqs = srv:requests()
    local first = reqs[#reqs - 1].body_json   -- (the call that named no format)
    assert.equal("base64", first.encoding_format)
    assert.equal(64, first.dimensions)
  end)

  -- (the API answers 400 to both: a program tried on the bundled server
  -- must not meet them first in production)
  it("more than 2048 inputs, or an empty string, is a 400 as from the API", function ()
    local many = {}
    for i = 1, 2049 do many[i] = "w" .. i end
    local res, err = c:embeddings { input = many, dimensions = 1 }
    assert.is_nil(res)
    assert.equal(400, err.status)
    assert.matches("at most 2048 inputs", err.message)
    many[2049] = nil
    assert.equal(2048, #assert(c:embeddings { input = many, dimensions = 1 }).data)
    res, err = c:embeddings { input = "" }
    assert.is_nil(res)
    assert.equal(400, err.status)
    assert.matches("'input': an input cannot be an empty string", err.message)
    res, err = c:embeddings { input = { "a", "" } }
    assert.is_nil(res)
    assert.matches("'input%[1%]'", err.message)
  end)

  it("files_content to a device or a folder is an io error; an existing file is replaced whole", function ()
    local up = assert(c:files_upload { purpose = "batch",
                                       file = { data = ("0123456789"):rep(1000), filename = "a.jsonl" } })
    local res, err = c:files_content(up.id, { to = "/dev/full" })
    assert.is_nil(res)
    assert.equal("io", err.kind)
    res, err = c:files_content(up.id, { to = "/tmp" })
    assert.is_nil(res)
    assert.equal("io", err.kind)
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write("old bytes")
    f:close()
    assert.equal(10000, assert(c:files_content(up.id, { to = path })).bytes)
    f = assert(io.open(path, "rb"))
    assert.equal(("0123456789"):rep(1000), f:read("*a"))
    f:close()
    os.remove(path)
    res, err = c:files_content(up.id, { to = function () error("sink broke") end })
    assert.is_nil(res)
    assert.equal("callback", err.kind)
    assert.matches("sink broke", err.message)
    assert.is_true(assert(c:files_delete(up.id)).deleted)
    res, err = c:files_retrieve(up.id)
    assert.is_nil(res)
    assert.equal(404, err.status)
  end)

  it("an upload's reader that raises, returns a non-string, or passes its size fails the call", function ()
    local function pieces (list)
      local i = 0
      return function () i = i + 1; return list[i] end
    end
    local function upload (file)
      file.filename = "r.jsonl"
      return c:files_upload { purpose = "batch", file = file }
    end
    local res, err = upload { reader = function () error("reader broke") end }
    assert.is_nil(res)
    assert.equal("callback", err.kind)
    res, err = upload { reader = pieces { "ab", 12 } }
    assert.is_nil(res)
    assert.equal("callback", err.kind)
    res, err = upload { reader = pieces { "abc", "def" }, size = 4 }
    assert.is_nil(res)
    assert.equal("io", err.kind)
    res, err = upload { reader = pieces { "ab" }, size = 4 }
    assert.is_nil(res)
    assert.equal("io", err.kind)
    assert.equal(4, assert(upload { reader = pieces { "ab", "cd" }, size = 4 }).bytes)
  end)
end)

describe("vec", function ()
  it("zero vectors score 0, ties keep the lower position, k past the set gives the set", function ()
    assert.equal(0, aigc.vec.cosine({ 0, 0 }, { 1, 2 }))
    assert.has_error(function () aigc.vec.cosine({ 1, 2 }, { 1, 2, 3 }) end)
    assert.has_error(function () aigc.vec.cosine({ 0 / 0, 1 }, { 1, 2 }) end)
    local index = aigc.vec.index()
    for _, v in ipairs { { 1, 0 }, { 2, 0 }, { 0, 1 }, { 3, 0 }, { 0, 0 } } do index:add(v) end
    local best, scores = index:topk({ 1, 0 }, 10)
    assert.same({ 1, 2, 4, 3, 5 }, best)
    assert.same({ 1, 1, 1, 0, 0 }, scores)
  end)
end)
