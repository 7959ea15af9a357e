-- README promises that no spec held to the letter (stop 45's audit): each
-- test quotes its sentence of README.md and checks it over real HTTP on
-- loopback, against the bundled server.

local aigc = require "aigc"
local devserver = require "devserver"

local function ask (c, params)
  params.messages = params.messages or { { role = "user", content = "Echo: hello there" } }
  return assert(c:chat(params))
end

describe("README, aigc.client's `headers`, `query`", function ()
  local srv
  devserver.fixture(_ENV, function (s) srv = s end)

  -- "a number is written ... (`1.5` under any C locale, `2.0` as `2`)"
  it("a whole float is sent as a whole number (2.0 as 2), the client's and a call's, header and query", function ()
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", max_retries = 0,
                            headers = { ["X-Client-Whole"] = 4 / 2, ["X-Client-Half"] = 1.5 },
                            query = { cw = 4 / 2 } }
    ask(c, { headers = { ["X-Call-Whole"] = 6 / 2, ["X-Call-Neg"] = -8 / 2, ["X-Call-Int"] = 7 },
             query = { qw = 10 / 2 } })
    c:close()
    local last = srv:last()
    local h, q = last.headers, last.query
    assert.same({ "2", "1.5", "3", "-4", "7" },
                { h["x-client-whole"], h["x-client-half"], h["x-call-whole"], h["x-call-neg"], h["x-call-int"] })
    assert.same({ "2", "5" }, { q.cw, q.qw })
  end)
end)

describe("README, Usage and cost", function ()
  local srv
  devserver.fixture(_ENV, function (s) srv = s end)

  local PRICES = {
    aigc = { input = 100, output = 100 },              -- a shorter prefix of the same names
    ["aigc-dev"] = { input = 1, output = 2 },          -- the longest prefix of "aigc-dev-2024"
    ["aigc-dev-x"] = { input = 7, output = 9 },        -- an exact name
  }

  local function cost_of (usage, price)
    return (usage.prompt_tokens * price.input + usage.completion_tokens * price.output) / 1e6
  end

  -- "a model takes the exact entry, else the longest entry its name starts with"
  it("prices a model by its exact entry, else by the longest entry its name starts with", function ()
    local c = aigc.client { base_url = srv.base_url, max_retries = 0, prices = PRICES }
    local dated = ask(c, { model = "aigc-dev-2024" })
    local exact = ask(c, { model = "aigc-dev-x" })
    local u = c:usage()
    c:close()
    assert.equal("aigc-dev-2024", dated.model)
    assert.is_true(dated.usage.prompt_tokens > 0 and dated.usage.completion_tokens > 0)
    assert.near(cost_of(dated.usage, PRICES["aigc-dev"]), u.models["aigc-dev-2024"].cost, 1e-12)
    assert.near(cost_of(exact.usage, PRICES["aigc-dev-x"]), u.models["aigc-dev-x"].cost, 1e-12)
    assert.near(cost_of(dated.usage, PRICES["aigc-dev"]) + cost_of(exact.usage, PRICES["aigc-dev-x"]), u.cost, 1e-12)
  end)

  -- "A cache hit counts its tokens but costs nothing (... `cache_hit_tokens` ...:
  -- `aigc.usage.billed(m)` is what was charged for)"
  it("a cache hit counts its tokens, costs nothing, and aigc.usage.billed leaves it out", function ()
    local c = aigc.client { base_url = srv.base_url, max_retries = 0, prices = PRICES, cache = true }
    local first = ask(c, { model = "aigc-dev", temperature = 0 })
    local again = ask(c, { model = "aigc-dev", temperature = 0 })
    local u = c:usage()
    c:close()
    assert.is_true(again.cached)
    assert.equal(1, u.cache_hits)
    local m = u.models["aigc-dev"]
    assert.equal(2 * first.usage.prompt_tokens, m.prompt_tokens)
    assert.equal(first.usage.prompt_tokens, m.cache_hit_tokens.prompt_tokens)
    assert.equal(first.usage.completion_tokens, m.cache_hit_tokens.completion_tokens)
    assert.same({ prompt_tokens = first.usage.prompt_tokens, completion_tokens = first.usage.completion_tokens,
                  total_tokens = first.usage.total_tokens }, aigc.usage.billed(m))
    assert.near(cost_of(first.usage, PRICES["aigc-dev"]), m.cost, 1e-12)
    assert.near(m.cost, u.cost, 1e-12)
  end)
end)

describe("README, Conversations: a history set by hand", function ()
  local client
  devserver.fixture(_ENV, function (_, c) client = c end, { model = "aigc-dev" })

  -- "a history set as it was that `say`, `say_async` or `save` cannot send
  -- (`calling 'save' on bad self (...)`)" and "`save()`/`load()` round-trip exactly"
  it("with a hole in it: save raises as say does, never a file without the messages after the hole", function ()
    local conv = aigc.conversation { client = client }
    conv:add { role = "user", content = "Echo: one" }
    conv.messages[3] = { role = "user", content = "Echo: three" }    -- (messages[2] left out)
    local ok, err = pcall(conv.say, conv, "Echo: four")
    assert.is_false(ok)
    assert.matches("calling 'say' on bad self (self.messages: sparse array", tostring(err), 1, true)
    ok, err = pcall(conv.save, conv)
    assert.is_false(ok, "save gave " .. tostring(err))
    assert.matches("calling 'save' on bad self (self.messages: sparse array", tostring(err), 1, true)
    conv.messages[2] = { role = "assistant", content = "two" }       -- (filled: a list again)
    local copy = assert(aigc.conversation.load(conv:save(), client))
    assert.same(conv.messages, copy.messages)
  end)

  it("an empty history is saved as an empty list, and loads", function ()
    local conv = aigc.conversation { client = client }
    local text = conv:save()
    assert.matches('"messages":[]', text, 1, true)
    local copy = assert(aigc.conversation.load(text, client))
    assert.equal(0, #copy.messages)
  end)
end)
