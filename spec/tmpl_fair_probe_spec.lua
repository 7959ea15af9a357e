-- Probes of prompt templates (aigc.template): a literal `{{name}}` in a
-- template, written inside `{% raw %}...{% endraw %}` (Jinja's escape).

local devserver = require "devserver"
local template = require "aigc.template"

describe("aigc.template raw blocks", function ()
  it("sends {% raw %}...{% endraw %} as it is, without the tags", function ()
    local text = "Mustache writes {% raw %}{{name}} and {{ user.id }}{% endraw %}; you are {{name}}."
    local out = assert(template.render(text, { name = "Ada" }))
    assert.equal("Mustache writes {{name}} and {{ user.id }}; you are Ada.", out)
    -- the tags' spacing as Jinja allows it, several blocks, a block at each end
    assert.equal("{{a}}-x-{{b}}", template.render("{%raw%}{{a}}{%   endraw %}-{{v}}-{%  raw%}{{b}}{% endraw%}",
                                                  { v = "x" }))
    -- a raw block needs no variables: nothing is missing
    assert.equal("{{input}}", template.render("{% raw %}{{input}}{% endraw %}", {}))
    assert.same({ "x", "y" }, template.variables("{{x}} {% raw %}{{hidden}}{% endraw %} {{y}}"))
    local t = template.new { system = "Show {% raw %}{{role}}{% endraw %}.", prompt = "{{q}}" }
    assert.same({ "q" }, t:variables(true))
  end)

  it("never expands a value again, raw tags in it included", function ()
    local out = assert(template.render("{{a}} {% raw %}{{a}}{% endraw %} {{b}}",
                                       { a = "{% endraw %}{{b}}{% raw %}", b = "B" }))
    assert.equal("{% endraw %}{{b}}{% raw %} {{a}} B", out)
    assert.equal("{% raw %}{{b}}{% endraw %}", template.render("{{a}}", { a = "{% raw %}{{b}}{% endraw %}" }))
  end)

  it("leaves a {% raw %} without an {% endraw %} after it as it was (plain text)", function ()
    assert.equal("{% raw %} Ada", template.render("{% raw %} {{name}}", { name = "Ada" }))
    assert.equal("{% endraw %} Ada {% raw %}", template.render("{% endraw %} {{name}} {% raw %}", { name = "Ada" }))
    local s, err = template.render("{% raw %} {{name}}", {})
    assert.is_nil(s)
    assert.same({ "name" }, err.missing)
  end)
end)

describe("aigc -t with a raw block", function ()
  it("sends the literal {{name}} and substitutes the rest", function ()
    local cli = require "cli"
    local srv, home = devserver.start {}, cli.home()
    cli.write(home .. "/templates/teach.lua", [=[
      return { system = "Explain {% raw %}{{name}}{% endraw %} to a {{level}}.", prompt = "{{input}}",
               defaults = { level = "beginner" } }
    ]=])
    local r = cli.run({ "-t", "teach", "-p", "level=child", "What is {{x}}?" },
                      { home = home, base_url = srv.base_url })
    local reqs = srv:requests()
    srv:stop()
    cli.rmdir(home)
    assert.equal(0, r.code, r.stderr)
    assert.equal(1, #reqs)
    local msgs = reqs[1].body_json.messages
    assert.equal("Explain {{name}} to a child.", msgs[1].content)
    assert.equal("What is {{x}}?", msgs[2].content)   -- (the prompt's text is a value: never expanded)
  end)
end)

-- A fresh aigc.ratelimit whose clock is `clock()` (the module takes
-- core.now when it loads): the test drives the time, nothing is timed.
local function limiter_module (clock)
  local core = require "aigc.core"
  local saved, real = package.loaded["aigc.ratelimit"], core.now
  package.loaded["aigc.ratelimit"], core.now = nil, clock
  local ok, m = pcall(require, "aigc.ratelimit")
  package.loaded["aigc.ratelimit"], core.now = saved, real
  assert(ok, m)
  return m
end

describe("aigc.ratelimit shared by tasks of different costs", function ()
  local t
  local ratelimit = limiter_module(function () return t end)

  -- A limiter of 600 tokens a minute (10 a second), drained at t = 0.
  local function drained ()
    t = 0
    local limiter = ratelimit.new { tpm = 600, concurrency = 1000 }
    assert.is_true((limiter:reserve(600)))
    limiter:sent(600)
    return limiter
  end

  -- Each second every task not yet sent asks, in `order`; returns the
  -- second at which each task was let go (and sent).
  local function run (limiter, tasks, seconds, order)
    local went = {}
    for s = 1, seconds do
      t = s
      for _, name in ipairs(order and order(s) or tasks) do
        local task = tasks[name]
        if task and not went[name] and s >= (task.from or 1) and s <= (task["until"] or math.huge) then
          local ok, wait = limiter:reserve(task.cost, 1, task.who or name)
          assert.is_true(wait >= 0)
          if ok then went[name] = s; limiter:sent(task.cost) end
        end
      end
    end
    return went
  end

  it("a big request waiting holds back later small ones (it waited forever)", function ()
    local limiter = drained()
    local tasks = { "big", "s1", "s2", "s3", big = { cost = 500 }, s1 = { cost = 50 }, s2 = { cost = 50 },
                    s3 = { cost = 50 } }
    -- (the small ones ask again in another order each second: their place is when they came)
    local went = run(limiter, tasks, 200, function (s)
      return s % 2 == 0 and { "big", "s3", "s2", "s1" } or { "big", "s1", "s2", "s3" }
    end)
    assert.equal(50, went.big)   -- 500 tokens at 10 a second
    assert.equal(55, went.s1)
    assert.equal(60, went.s2)
    assert.equal(65, went.s3)
  end)

  it("holds back a caller that does not name itself too; one that came first still goes first", function ()
    local limiter = drained()
    t = 1
    assert.is_false((limiter:reserve(300, 1, "big")))
    t = 29
    assert.is_false((limiter:reserve(50)))   -- (290 tokens: enough for 50, but big came first)
    t = 30
    assert.is_true((limiter:reserve(300, 1, "big")))
    limiter:sent(300)
    t = 35
    assert.is_true((limiter:reserve(50)))
  end)

  it("a caller that stops asking loses its place after LAPSE seconds past its wait", function ()
    local limiter = drained()
    local tasks = { "big", "small", big = { cost = 500, ["until"] = 1 }, small = { cost = 50, from = 2 } }
    local went = run(limiter, tasks, 200)
    assert.is_nil(went.big)
    -- big was told to wait 49 s at t = 1: its place lapses after t = 55
    assert.equal(1 + 49 + ratelimit.LAPSE + 1, went.small)
  end)

  it("without names, callers are served as before (the runner's single caller)", function ()
    local limiter = drained()
    t = 1
    assert.is_false((limiter:reserve(500)))
    t = 5
    assert.is_true((limiter:reserve(50)))
    assert.has_error(function () limiter:reserve(1, 1, 0 / 0) end,
                     "bad argument #3 to 'reserve' (NaN cannot name a caller)")
  end)
end)
