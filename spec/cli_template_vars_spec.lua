-- `-p NAME=VALUE` with a NAME the template does not use (a typo: `-p
-- lnag=French` for {{lang}}) was dropped without a word: the call went with
-- the template's default, or a run's every case did. A usage error (exit 2)
-- naming the variable and the template's own, before anything is sent, in
-- `aigc -t`, `aigc chat -t` and `aigc run -t`.
local cli = require "cli"

describe("aigc -p with a variable the template does not have", function ()
  local srv, home
  local aigc = cli.fixture(_ENV, function (s, h) srv, home = s, h end)

  before_each(function ()
    cli.write(home .. "/templates/tr.lua",
              '{ system = "Answer in {{lang}}.", prompt = "Translate: {{input}}", defaults = { lang = "English" } }')
  end)

  local WANT = "-p lnag: template 'tr' has no variable 'lnag' (its variables: lang, input)\n"

  local function requests () return #srv:requests() end

  it("aigc -t, aigc chat -t, aigc run -t: exit 2 naming it, nothing sent", function ()
    local cases = home .. "/cases.jsonl"
    cli.write(cases, '{"id": "a", "vars": {"input": "Hi"}}\n')
    for _, args in ipairs { { "-t", "tr", "-p", "lnag=French", "Hi" }, { "chat", "-t", "tr", "-p", "lnag=French" },
                            { "run", "-t", "tr", "-p", "lnag=French", "-q", cases } } do
      local r = aigc(args, { stdin = "Hi\n" })
      assert.equal(2, r.code, r.stderr)
      assert.equal("", r.stdout)
      assert.equal(WANT, r.stderr)
    end
    assert.equal(0, requests())
  end)

  it("its own variables still go: -p lang=French is in the system prompt", function ()
    local r = aigc { "-m", "aigc-dev", "--json", "-t", "tr", "-p", "lang=French", "Hi" }
    assert.equal(0, r.code, r.stderr)
    local body = srv:bodies("/v1/chat/completions")[1]
    assert.equal("Answer in French.", body.messages[1].content)
    assert.equal("Translate: Hi", body.messages[2].content)
  end)
end)
