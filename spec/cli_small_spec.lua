-- Small defects of the `aigc` command, each found by a review: what --help
-- leaves out, values it took and should refuse, and `aigc -c` / `aigc chat
-- -c` taking the model from different places.

local cjson = require "cjson"
local cli = require "cli"
local proc = require "procutil"

describe("aigc (small defects)", function ()
  local srv, home
  local aigc = cli.fixture(_ENV, function (s, h) srv, home = s, h end)

  it("--help lists --version (it was answered but never shown); -m X --version answers it too", function ()
    local r = aigc { "--help" }
    assert.equal(0, r.code, r.stderr)
    assert.matches("\n   %-%-version +Print the version and exit%.\n", r.stdout)
    local v = aigc { "--version" }
    assert.equal(0, v.code, v.stderr)
    assert.matches("^aigc %S+ %(Lua", v.stdout)
    r = aigc { "-m", "some-model", "--version" }
    assert.equal(0, r.code, r.stderr)
    assert.equal(v.stdout, r.stdout)
    assert.equal(0, #srv:requests())
  end)

  it("--assert TYPE: with nothing after the colon is a usage error (contains: passed on every reply)", function ()
    local cases = home .. "/cases.jsonl"
    cli.write(cases, '{"id": "a", "prompt": "Echo: alpha"}\n')
    for _, ty in ipairs { "contains", "icontains", "not-contains", "starts-with", "pattern", "regex", "judge" } do
      local r = aigc { "run", cases, "-q", "--no-log", "--assert", ty .. ":" }
      assert.equal(2, r.code, ty .. ": " .. r.stderr)
      assert.equal("--assert: " .. ty .. ": no value after the colon (" .. ty .. ":TEXT)\n", r.stderr)
    end
    assert.equal(0, #srv:requests())
    -- (equals: an empty value means an empty reply: the devserver's reply is not one)
    local r = aigc { "run", cases, "-q", "--no-log", "--assert", "equals:" }
    assert.equal(3, r.code, r.stderr)
    r = aigc { "run", cases, "-q", "--no-log", "--assert", "contains:alpha" }
    assert.equal(0, r.code, r.stderr)
  end)

  it("image -n above 10 (the API's bound) is a usage error, nothing sent (-n 1e9 was sent)", function ()
    for _, n in ipairs { "1e9", "11" } do
      local r = aigc { "image", "-n", n, "a door", "-o", home .. "/door.png" }
      assert.equal(2, r.code, n .. ": " .. r.stderr)
      assert.equal("-n: at most 10 images per call\n", r.stderr)
    end
    assert.equal(0, #srv:requests())
    local r = aigc { "image", "-n", "10", "-s", "8x8", "-m", "gpt-image-1", "a door", "-o", home .. "/door.png" }
    assert.equal(0, r.code, r.stderr)
    assert.equal(10, srv:last().body_json.n)
  end)

  it("image -o with a % besides the %d: only the last %d is the number (it went into 100%done too)", function ()
    local r = aigc { "image", "-n", "2", "-s", "8x8", "-m", "gpt-image-1", "x", "-o", home .. "/100%done-%d.png" }
    assert.equal(0, r.code, r.stderr)
    assert.equal(home .. "/100%done-1.png\n" .. home .. "/100%done-2.png\n", r.stdout)
    assert.is_true(proc.exists(home .. "/100%done-2.png"))
  end)

  it("aigc -c and aigc chat -c both send the continued conversation's model unless -m is given", function ()
    -- (aigc -c sent the config's model, aigc chat -c the conversation's)
    cli.write(home .. "/config.lua", '{ model = "config-model" }')
    local r = aigc { "-m", "first-model", "What is the capital of France?" }
    assert.equal(0, r.code, r.stderr)
    assert.equal("first-model", srv:last().body_json.model)
    r = aigc { "-c", "And of Spain?" }
    assert.equal(0, r.code, r.stderr)
    local body = cjson.decode(srv:last().body)
    assert.equal("first-model", body.model)
    assert.equal(3, #body.messages)
    r = aigc({ "chat", "-c" }, { stdin = "What is 2 + 2?\n" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("first-model", srv:last().body_json.model)
    -- -m wins in both, and the conversation goes on with it
    r = aigc { "-c", "-m", "other-model", "And of Italy?" }
    assert.equal(0, r.code, r.stderr)
    assert.equal("other-model", srv:last().body_json.model)
    r = aigc({ "chat", "-c", "-m", "third-model" }, { stdin = "What is 3 + 3?\n" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("third-model", srv:last().body_json.model)
    r = aigc { "-c", "Thanks." }
    assert.equal(0, r.code, r.stderr)
    assert.equal("third-model", srv:last().body_json.model)
    -- a new conversation: the config's model, as before
    r = aigc { "Hi" }
    assert.equal(0, r.code, r.stderr)
    assert.equal("config-model", srv:last().body_json.model)
  end)
end)
