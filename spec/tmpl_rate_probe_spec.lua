-- Probes of prompt templates (aigc.template) and client-side rate limiting
-- (aigc.ratelimit): values with no text, number digits, the cost of many
-- missing variables, injection; costs the limiter must refuse.

local aigc = require "aigc"
local devserver = require "devserver"
local ratelimit = require "aigc.ratelimit"
local template = require "aigc.template"

-- Runs f in a coroutine that fails after `limit` Lua instructions (counted,
-- not timed: a quadratic loop is caught on any machine, under valgrind too).
-- LuaJIT calls count hooks only in the interpreter: the JIT is off meanwhile.
local function within_instructions (limit, f)
  local jit = rawget(_G, "jit")
  if jit then jit.off() end
  local co = coroutine.create(f)
  debug.sethook(co, function () error("more than " .. limit .. " instructions", 0) end, "", limit)
  local ok, err = coroutine.resume(co)
  -- (LuaJIT's hooks are the whole VM's, whatever thread they were set on:
  -- left set, the count fired in whichever spec ran next)
  debug.sethook(co)
  debug.sethook()
  if jit then jit.on() end
  return ok, err
end

describe("aigc.template probes", function ()
  it("a value with no text is an error naming the variable, never its address", function ()
    local cyclic = {}
    cyclic.self = cyclic
    for _, v in ipairs { print, io.stdout, coroutine.create(function () end), { f = print }, { 1, a = 2 }, cyclic } do
      local s, err = template.render("Tell me about {{thing}}.", { thing = v })
      assert.is_nil(s)
      assert.equal("template", err.kind)
      assert.equal("thing", err.variable)
      assert.same({}, err.missing)
      assert.matches("template variable 'thing': ", err.message, 1, true)
      assert.is_nil(err.message:find("0x", 1, true))
    end
    local s, err = template.render("{{t}}", { t = { f = print } })
    assert.is_nil(s)
    assert.matches("a table JSON cannot hold (value.f: cannot encode a function)", err.message, 1, true)
    -- (a template's render says which template)
    local t = template.new { name = "about", system = "Be brief.", prompt = "About {{thing}}" }
    local p, terr = t:render { thing = print }
    assert.is_nil(p)
    assert.equal("template 'about': template variable 'thing': a function has no text "
                 .. "(a string, number, boolean or table expected)", terr.message)
    -- a missing variable is still reported as missing (and first)
    local p2, merr = t:render {}
    assert.is_nil(p2)
    assert.same({ "thing" }, merr.missing)
  end)

  it("inserts numbers with every digit and a '.', as JSON writes them", function ()
    assert.equal("x=1234567.123456789", template.render("x={{x}}", { x = 1234567.123456789 }))
    assert.equal("0.1 0.3333333333333333", template.render("{{a}} {{b}}", { a = 0.1, b = 1 / 3 }))
    assert.equal("9007199254740994", template.render("{{n}}", { n = 2 ^ 53 + 2 }))
    assert.equal("-12 3 1e-07", template.render("{{a}} {{b}} {{c}}", { a = -12, b = 3.0, c = 1e-7 }))
    assert.equal("true false", template.render("{{a}} {{b}}", { a = true, b = false }))
  end)

  it("names 20,000 missing variables in linear time (was a quadratic merge)", function ()
    local n, parts = 20000, {}
    for i = 1, n do parts[i] = "{{v" .. i .. "}}" end
    local t = template.new { system = "{{v1}} {{w}}", prompt = table.concat(parts, " ") }
    local p, err
    local ok, herr = within_instructions(4e7, function () p, err = t:render {} end)
    assert.is_true(ok, herr)
    assert.is_nil(p)
    assert.equal(n + 1, #err.missing)
    assert.equal("v1", err.missing[1])
    assert.equal("w", err.missing[2])
    assert.equal("v" .. n, err.missing[n + 1])
  end)

  it("never reads an inserted value for placeholders (no injection), in the system prompt either", function ()
    local t = template.new { system = "You are {{role}}.", prompt = "Q: {{q}}", defaults = { role = "terse" } }
    local p = assert(t:render { q = "{{role}} {{secret}} {{ q }}", role = "{{q}}" })
    assert.equal("You are {{q}}.", p.messages[1].content)
    assert.equal("Q: {{role}} {{secret}} {{ q }}", p.messages[2].content)
    -- pathological text is linear too
    local text = ("{{ "):rep(50000) .. ("a"):rep(50000) .. ("{{a"):rep(50000)
    local ok, herr = within_instructions(2e7, function () template.render(text, { a = "x" }) end)
    assert.is_true(ok, herr)
  end)
end)

describe("aigc -t with a value that has no text", function ()
  it("is a usage error naming the variable, nothing sent (was the table's address in the prompt)", function ()
    local cli = require "cli"
    local srv, home = devserver.start {}, cli.home()
    cli.write(home .. "/templates/tags.lua", [[
      return { system = "Tags: {{tags}}.", prompt = "About {{input}}", defaults = { tags = { 1, a = 2 } } }
    ]])
    local opts = { home = home, base_url = srv.base_url, stdin = "Hi\n" }
    local chat = cli.run({ "chat", "-t", "tags" }, opts)
    local one = cli.run({ "-t", "tags", "cats" }, opts)
    local sent = #srv:requests()
    srv:stop()
    cli.rmdir(home)
    local want = "template 'tags': template variable 'tags': a table JSON cannot hold (value: mixed table "
    for _, r in ipairs { chat, one } do
      assert.equal(2, r.code, r.stderr)
      assert.matches(want, r.stderr, 1, true)
      assert.is_nil(r.stderr:find("give it with -p", 1, true))
    end
    assert.equal(0, sent)
  end)
end)

describe("aigc.ratelimit probes", function ()
  it("refuses a NaN, negative or non-number cost (NaN emptied its memory of what was sent: a 429)", function ()
    local srv = devserver.start {}
    local client = aigc.client { base_url = srv.base_url, max_retries = 0 }
    local params = devserver.params("rate-limit=60,rate-limit-tpm=1000", { max_tokens = 700 })
    local cost = ratelimit.estimate(params)
    local l = ratelimit.new { concurrency = 4 }
    local ticket = l:sent(cost)
    local res = assert(client:chat(params))
    l:observe(ticket, res)
    assert.is_false((l:reserve(cost)))          -- the server has ~300 tokens left: it would answer 429
    assert.has_error(function () l:sent(0 / 0) end, "bad argument #1 to 'sent' (number >= 0 expected, got "
                     .. tostring(0 / 0) .. ")")
    assert.is_false((l:reserve(cost)))          -- (old: true, and the request was a 429)
    local _, err = client:chat(params)          -- what the server says of it
    assert.equal(429, err.status)
    assert.has_error(function () l:sent(-1000000) end, "bad argument #1 to 'sent' (number >= 0 expected, got -1000000)")
    assert.has_error(function () l:reserve("abc") end,
                     "bad argument #1 to 'reserve' (number >= 0 expected, got string)")
    assert.has_error(function () l:reserve(10, 0 / 0) end)
    client:close()
    srv:stop()
  end)

  it("estimates a finite cost >= 0 for counts a server will refuse, so the runner can reserve it", function ()
    for _, p in ipairs { { max_tokens = -5000 }, { max_tokens = 0 / 0 }, { max_completion_tokens = -1, n = -3 },
                         { max_tokens = 1e308, n = 10 } } do
      local cost = ratelimit.estimate(p)
      assert.is_true(cost >= 0 and cost < math.huge, tostring(cost))
      local l = ratelimit.new { tpm = 1000 }
      assert.has_no_error(function () l:reserve(cost); l:sent(cost) end)
    end
    -- (-5000 counts as the default 16 output tokens: a body as long as 16000's)
    assert.equal(16000 - 16, ratelimit.estimate { max_tokens = 16000 } - ratelimit.estimate { max_tokens = -5000 })
  end)

  it("estimates at least what the server counts for a schema or a stream (was ~20 tokens short)", function ()
    local srv = devserver.start {}
    local client = aigc.client { base_url = srv.base_url, max_retries = 0 }
    local schema = { type = "object", properties = { a = { type = "string" } } }
    local shapes = {
      { schema = schema },
      { schema = schema, schema_name = "answer", max_tokens = 50 },
      { stream = function () end },
      {},
    }
    for i, extra in ipairs(shapes) do
      -- (a limiter of its own per shape, key k<i>: its remaining tokens say what this request cost)
      local params = { model = "fault:rate-limit=60,rate-limit-tpm=100000,key=k" .. i,
                       messages = { { role = "user", content = "Hi" } } }
      for k, v in pairs(extra) do params[k] = v end
      local res = assert(client:chat(params))
      local counted = 100000 - tonumber(res.headers["x-ratelimit-remaining-tokens"])
      local estimated = ratelimit.estimate(params)
      assert.is_true(estimated >= counted, ("shape %d: estimated %d, the server counted %d"):format(i, estimated,
                                                                                                   counted))
    end
    client:close()
    srv:stop()
  end)

  it("counts a ticket observed twice once (it let a request more than the concurrency fly)", function ()
    local l = ratelimit.new { concurrency = 4, pace = false }
    local a = l:sent(10)
    l:sent(10)                                  -- b, still in flight
    l:observe(a, nil, { status = 429, retry_after = 0 })
    l:observe(a, nil, { status = 429, retry_after = 0 })   -- reported again
    assert.same({ concurrency = 2, in_flight = 1, rate_limited = 1 }, l:state())   -- (old: 1, 0, 2)
    assert.is_true((l:reserve(10)))
    l:sent(10)                                  -- c beside b: the concurrency's 2
    assert.is_false((l:reserve(10)))
    local t = l:sent(0)
    l:observe(t, { headers = {} })
    l:observe(t, { headers = {} })
    assert.equal(2, l:state().in_flight)
  end)
end)
