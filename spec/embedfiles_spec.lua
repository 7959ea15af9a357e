-- Embeddings, files and vectors against replies the bundled server does not
-- give: a server that sends a batch's embeddings out of order, one that
-- repeats a page's cursor. The scripted server (spec/support/scripted.lua)
-- answers with the exact replies below and records what it received.
local aigc = require "aigc"
local scripted = require "scripted"
local cjson = require "cjson"
local b64 = require "b64"

-- Little-endian float32 bytes of 1, 2 and -0.5 (no string.pack on 5.1).
local ONE, TWO, MINUS_HALF = "\0\0\128\63", "\0\0\0\64", "\0\0\0\191"

local function json (t) return "json " .. cjson.encode(t) end

local function client_of (srv)
  return aigc.client { base_url = srv.base_url, api_key = "sk-embedfiles-SECRET", max_retries = 0, model = "m" }
end

local function embedding_list (items)
  return json { object = "list", model = "m", data = items, usage = { prompt_tokens = 2, total_tokens = 2 } }
end

describe("embeddings", function ()
  -- (helixml/kodit#77: a server embedding a batch in parallel answered out of
  -- order; pydantic-ai#7506 and litellm sort by index for the same reason)
  it("res.data[i] is input i's: ordered by `index`, not by the order the server sent them", function ()
    local srv = scripted.start {
      embedding_list {
        { object = "embedding", index = 2, embedding = b64(MINUS_HALF) },
        { object = "embedding", index = 0, embedding = b64(ONE) },
        { object = "embedding", index = 1, embedding = b64(TWO) },
      },
      embedding_list {   -- (the caller chose floats: the same)
        { object = "embedding", index = 1, embedding = { 2 } },
        { object = "embedding", index = 0, embedding = { 1 } },
      },
      embedding_list {   -- (no indexes: left as sent)
        { object = "embedding", embedding = { 2 } },
        { object = "embedding", embedding = { 1 } },
      },
    }
    local c = client_of(srv)
    local res = assert(c:embeddings { input = { "one", "two", "minus half" } })
    assert.same({ 0, 1, 2 }, { res.data[1].index, res.data[2].index, res.data[3].index })
    assert.same({ { 1 }, { 2 }, { -0.5 } }, { res.data[1].embedding, res.data[2].embedding, res.data[3].embedding })
    res = assert(c:embeddings { input = { "one", "two" }, encoding_format = "float" })
    assert.same({ { 1 }, { 2 } }, { res.data[1].embedding, res.data[2].embedding })
    res = assert(c:embeddings { input = { "one", "two" }, encoding_format = "float" })
    assert.same({ { 2 }, { 1 } }, { res.data[1].embedding, res.data[2].embedding })
    c:close()
    assert.equal(3, #srv.finish())
  end)
end)

describe("embeddings(string)", function ()
  it("takes a string as the input, as its reference says and as moderate does", function ()
    local srv = scripted.start { embedding_list { { object = "embedding", index = 0, embedding = b64(ONE .. TWO) } } }
    local c = client_of(srv)
    local res = assert(c:embeddings("where can I sleep?"))
    assert.same({ 1, 2 }, res.data[1].embedding)
    c:close()
    local sent = srv.finish()
    assert.equal("where can I sleep?", sent[1].input)
    assert.equal("base64", sent[1].encoding_format)
    assert.equal("m", sent[1].model)
  end)
end)

describe("files_list", function ()
  it("a server that repeats the cursor it was given is an error: the README's page loop ends", function ()
    local page = json { object = "list", has_more = true,
                        data = { { object = "file", id = "file-1" }, { object = "file", id = "file-2" } } }
    local srv = scripted.start { page, page }
    local c = client_of(srv)
    local first = assert(c:files_list { limit = 2 })
    assert.equal("file-2", first.next_after)
    local pages, res, err = 1, first, nil
    while res and res.next_after and pages < 3 do   -- (the README's loop, bounded here)
      res, err = c:files_list { limit = 2, after = res.next_after }
      pages = pages + 1
    end
    assert.equal(2, pages)
    assert.is_nil(res)
    assert.equal("parse", err.kind)
    assert.matches("file%-2", err.message)
    assert.not_matches("SECRET", tostring(err))
    c:close()
    assert.equal(2, #srv.finish())
  end)
end)

describe("embeddings decoded from base64", function ()
  it("a NaN or an inf is a parse error naming the element, as the same reply sent as floats is", function ()
    local NAN, INF = "\0\0\192\127", "\0\0\128\255"   -- (float32 NaN, -inf)
    local srv = scripted.start {
      embedding_list { { object = "embedding", index = 0, embedding = b64(ONE .. ONE .. NAN) } },
      embedding_list { { object = "embedding", index = 0, embedding = b64(ONE) },
                       { object = "embedding", index = 1, embedding = b64(INF .. ONE) } },
      'json {"object":"list","data":[{"object":"embedding","index":0,"embedding":[1, 1e400]}]}',
    }
    local c = client_of(srv)
    local res, err = c:embeddings { input = "x" }
    assert.is_nil(res)
    assert.equal("parse", err.kind)
    assert.matches("embedding 1: element 3 is NaN", err.message)
    res, err = c:embeddings { input = { "x", "y" } }
    assert.is_nil(res)
    assert.equal("parse", err.kind)
    assert.matches("embedding 2: element 1 is inf", err.message)
    res, err = c:embeddings { input = "x" }   -- (floats: the JSON decoder's own refusal)
    assert.is_nil(res)
    assert.equal("parse", err.kind)
    assert.not_matches("SECRET", tostring(err))
    c:close()
    assert.equal(3, #srv.finish())
  end)
end)

describe("embeddings sent as JSON floats", function ()
  -- (llama.cpp's llama-server writes a NaN as null, lfnovo/esperanto#119;
  -- Ollama answered an embedding of null, ollama/ollama#2140)
  it("a null element or a null embedding is a parse error naming it, whichever format was asked", function ()
    local srv = scripted.start {
      'json {"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,null,0.25]}]}',
      'json {"object":"list","data":[{"object":"embedding","index":0,"embedding":[1]},'
        .. '{"object":"embedding","index":1,"embedding":null}]}',
      'json {"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,null]}]}',
      'json {"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,0.25]}]}',
    }
    local c = client_of(srv)
    local res, err = c:embeddings { input = "x" }   -- (base64 asked, floats sent: a server that ignores it)
    assert.is_nil(res)
    assert.equal("parse", err.kind)
    assert.matches("embedding 1: element 2 is null", err.message)
    res, err = c:embeddings { input = { "x", "y" } }
    assert.is_nil(res)
    assert.matches("embedding 2: a list of numbers expected, got null", err.message)
    res, err = c:embeddings { input = "x", encoding_format = "float" }
    assert.is_nil(res)
    assert.matches("embedding 1: element 2 is null", err.message)
    res = assert(c:embeddings { input = "x" })
    assert.same({ 0.5, 0.25 }, res.data[1].embedding)
    c:close()
    assert.equal(4, #srv.finish())
  end)
end)

describe("an empty embedding", function ()
  -- ([] or base64 "": the result held a vector of no numbers, and the
  -- caller's vec index:add raised on it, a server's fault as a raise)
  it("is a parse error naming it, as floats or base64", function ()
    local srv = scripted.start {
      'json {"object":"list","data":[{"object":"embedding","index":0,"embedding":[]}]}',
      embedding_list { { object = "embedding", index = 0, embedding = b64(ONE) },
                       { object = "embedding", index = 1, embedding = "" } },
    }
    local c = client_of(srv)
    local res, err = c:embeddings { input = "x" }
    assert.is_nil(res)
    assert.equal("parse", err.kind)
    assert.matches("embedding 1: a list of numbers expected, got an empty list", err.message, 1, true)
    res, err = c:embeddings { input = { "x", "y" } }
    assert.is_nil(res)
    assert.equal("parse", err.kind)
    assert.matches("embedding 2: a list of numbers expected, got an empty list", err.message, 1, true)
    c:close()
    assert.equal(2, #srv.finish())
  end)
end)

describe("a query string", function ()
  -- (files_list's limit, a client's query: Lua 5.3+ writes 4/2 as "2.0")
  it("writes a whole float as a whole number, on every Lua", function ()
    local util = require "aigc.util"
    assert.equal("after=f&limit=2", util.encode_query { limit = 4 / 2, after = "f" })
    assert.equal("a=0&b=-3&c=0.5&d=9007199254740992", util.encode_query { a = -0.0, b = -3.0, c = 0.5, d = 2 ^ 53 })
  end)
end)
