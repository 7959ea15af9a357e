-- A call of the `aigc` command that fails because of where it was sent says
-- what to do, under the error. A new user's first `aigc "Hi"` (no key, no
-- server named) printed only "aigc: connect error: Could not resolve host:
-- api.openai.com" (or OpenAI's 401); a server not started, only "Couldn't
-- connect to server"; a base URL without its /v1, only "http error 404:
-- Invalid URL". The hint never shows a password of the base URL.
local cli = require "cli"
local proc = require "procutil"

local NO_KEY = "aigc: no API key: set OPENAI_API_KEY for OpenAI, or name another server with OPENAI_BASE_URL=URL "
  .. "or -e NAME (-e local: the bundled server, `make server`)\n"

local function url_hint (base)
  return "aigc: is the base URL right? " .. base .. ": an OpenAI-compatible server's ends in /v1 (each call adds its "
    .. "path, /chat/completions..., after it)\n"
end

describe("aigc's failed calls say what to do", function ()
  local srv, home
  local aigc = cli.fixture(_ENV, function (s, h) srv, home = s, h end)
  local port, release

  before_each(function () port, release = proc.closed_port() end)
  after_each(function () release() end)

  -- OpenAI's own address, with no key: reached through a proxy that is not
  -- there, so the call fails at once, here, with no network.
  local function openai (args, key)
    return cli.run(args, { home = home, env = { https_proxy = "http://127.0.0.1:" .. port, no_proxy = "",
                                                OPENAI_API_KEY = key } })
  end

  it("no key and no server named: set OPENAI_API_KEY, or name a server (prompt, models)", function ()
    for _, args in ipairs { { "Hi" }, { "models" } } do
      local r = openai(args)
      assert.equal(1, r.code, r.stderr)
      assert.equal("", r.stdout)
      local first, rest = r.stderr:match("^(aigc: connect error: [^\n]*\n)(.*)$")
      assert.truthy(first, r.stderr)
      assert.equal(NO_KEY, rest)
    end
  end)

  it("a key given: the connect error alone", function ()
    local r = openai({ "Hi" }, "sk-fake-hint-0123456789")
    assert.equal(1, r.code, r.stderr)
    assert.matches("^aigc: connect error: [^\n]*\n$", r.stderr)
    assert.not_matches("sk%-fake", r.stderr)
  end)

  it("nothing answers on this machine: is the server running?", function ()
    local base = "http://127.0.0.1:" .. port .. "/v1"
    local r = aigc({ "-m", "aigc-dev", "Hi" }, { base_url = base })
    assert.equal(1, r.code, r.stderr)
    local first, rest = r.stderr:match("^(aigc: connect error: [^\n]*\n)(.*)$")
    assert.truthy(first, r.stderr)
    assert.equal("aigc: nothing answers at " .. base .. ": is the server running? (the bundled one: `make server`)\n",
                 rest)
  end)

  it("a 404 from a base URL without /v1: is the base URL right? (prompt, models, image, speak; no password shown)",
     function ()
    local bare = srv.base_url:gsub("/v1$", "")
    local with_password = bare:gsub("^http://", "http://user:pass-hint-secret@")
    for _, args in ipairs { { "-m", "aigc-dev", "Hi" }, { "models" }, { "image", "a door", "-o", home .. "/d.png" },
                            { "speak", "Halt!", "-o", home .. "/h.wav" } } do
      local r = aigc(args, { base_url = with_password })
      assert.equal(1, r.code, r.stderr)
      local first, rest = r.stderr:match("^(aigc: http error 404: [^\n]*\n)(.*)$")
      assert.truthy(first, r.stderr)
      assert.equal(url_hint(bare), rest)
      assert.not_matches("pass%-hint%-secret", r.stderr)
    end
  end)

  it("a base URL past its /v1 (the call's path in it): the same hint", function ()
    local base = srv.base_url .. "/chat/completions"
    local r = aigc({ "-m", "aigc-dev", "Hi" }, { base_url = base })
    assert.equal(1, r.code, r.stderr)
    local rest = r.stderr:match("^aigc: http error 404: [^\n]*\n(.*)$")
    assert.equal(url_hint(base), rest)
  end)

  it("the chat REPL says it under a failed turn's error, and goes on", function ()
    local bare = srv.base_url:gsub("/v1$", "")
    local r = aigc({ "chat", "-m", "aigc-dev" }, { base_url = bare, stdin = "Hi\n" })
    assert.equal(0, r.code, r.stderr)
    local rest = r.stderr:match("aigc: http error 404: [^\n]*\n(.*)$")
    assert.equal(url_hint(bare), rest)
  end)

  it("the right base URL: no hint on a failure of the call itself", function ()
    local r = aigc({ "-m", "aigc-dev", "-o", "temperature=9", "Hi" })
    assert.equal(1, r.code, r.stderr)
    assert.matches("^aigc: http error 400: [^\n]*\n$", r.stderr)
  end)
end)
