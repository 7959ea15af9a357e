-- A JSON null where a schema keyword, a case's prompt or messages, or an
-- assertion's field goes (a schema file or a cases file written as JSON:
-- `"minimum": null`, `"prompt": null`) was named by its Lua type: "#/minimum
-- must be a number, got userdata", "case 1: prompt must be a string, got
-- userdata", "assert: unknown assertion userdata". Named "null" now, as the
-- file wrote it.
local aigc = require "aigc"
local cli = require "cli"
local devserver = require "devserver"
local runner = require "aigc.runner"
local proc = require "procutil"

local null = aigc.null
local write = cli.write

describe("a JSON null where a value goes", function ()
  local srv
  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)

  it("is named null in a schema's check, through the library and --schema FILE", function ()
    local c = aigc.client { base_url = srv.base_url, api_key = "sk-fake-null", max_retries = 0 }
    local ok, e = pcall(c.chat, c, { messages = { { role = "user", content = "hi" } },
                                     schema = { type = "object", properties = { age = { minimum = null } } } })
    c:close()
    assert.is_false(ok)
    assert.matches("#/properties/age/minimum must be a number, got null", e, 1, true)
    local home = cli.home()
    finally(function () proc.execute("rm -rf " .. proc.quote(home)) end)
    write(home .. "/s.json", '{"type": "object", "required": [null], "properties": {}}')
    local r = cli.run({ "--no-log", "--schema", home .. "/s.json", "Invent a person." },
                      { home = home, base_url = srv.base_url })
    assert.equal(2, r.code)
    assert.matches("#/required/0 must be a string, got null", r.stderr, 1, true)
    assert.equal(0, srv:stats().requests_total)   -- (refused before anything is sent)
  end)

  it("is named null in a cases file's prompt, messages and assertions", function ()
    local home = cli.home()
    finally(function () proc.execute("rm -rf " .. proc.quote(home)) end)
    local cases = home .. "/cases.jsonl"
    local function refused (line, want)
      write(cases, line .. "\n")
      local r = cli.run({ "run", "--no-log", cases, "--out", home .. "/out.jsonl" },
                        { home = home, base_url = srv.base_url })
      assert.equal(2, r.code)
      assert.matches(want, r.stderr, 1, true)
    end
    refused('{"id": "a", "prompt": null}', "cases.jsonl:1: case a: prompt must be a string, got null")
    refused('{"id": "a", "messages": null}', "cases.jsonl:1: case a: messages must be a list of messages, got null")
    refused('{"id": "a", "prompt": "hi", "assert": [null]}', "case a: assert: unknown assertion null")
    refused('{"id": "a", "prompt": "hi", "assert": {"type": "contains", "value": null}}',
            "case a: assert: contains: the value must be a string, got null")
    refused('{"id": "a", "prompt": "hi", "assert": {"type": "judge", "value": "kind", "threshold": null}}',
            "case a: assert: judge: threshold must be a number, got null")
    refused('{"id": "a", "prompt": "hi", "assert": {"type": "json-schema", "value": null}}',
            "case a: assert: json-schema: the value must be a JSON schema (an object), got null")
    assert.equal(0, srv:stats().requests_total)
    -- (the library's runner words it so too)
    local c = aigc.client { base_url = srv.base_url, api_key = "sk-fake-null", max_retries = 0 }
    local summary, err = runner.run { client = c, cases = { { id = "b", prompt = null } } }
    c:close()
    assert.is_nil(summary)
    assert.matches("case b: prompt must be a string, got null", err.message, 1, true)
  end)
end)
