-- Text read with Lua patterns that were quadratic in a run of blanks (or of
-- other bytes) inside it: a lazy "(.-)" before "%s*$", an unanchored
-- "[^/]*$". Each case is run in a child bounded by `timeout 60`, a hang's
-- bound, not a timing (the machine may be loaded): the old patterns took
-- minutes there, the byte loops take milliseconds.
local devserver = require "devserver"
local proc = require "procutil"

-- Runs `code` in a child Lua 5.4 (the module for 5.4, spec/support on the
-- path) under `timeout 60`: true or false, and what it printed.
local function bounded (code)
  local setup = "package.path = 'lua/?.lua;lua/?/init.lua;spec/support/?.lua;' .. package.path; "
    .. "package.cpath = './?.so;' .. package.cpath; "
  return proc.sh("timeout 60 lua5.4 -e " .. proc.quote(setup .. code))
end

describe("text with long runs of blanks", function ()
  it("the bundled server parses a header of 64 kB of blanks between two letters at once (12 s per request)",
     function ()
    local srv = devserver.start()
    finally(function () srv:stop() end)
    -- ten requests, each with a header "a<60,000 blanks>b" and trailing blanks
    local ok, out = bounded(([[
      local raw = require "rawhttp"
      local pad = "a" .. (" \t"):rep(30000) .. "b"
      for _ = 1, 10 do
        local res = raw.call(%d, "POST", "/v1/chat/completions",
                             { messages = { { role = "user", content = "Hi" } } }, { ["X-Pad"] = pad .. " \t " })
        io.write(res.status, " ")
      end]]):format(srv.port))
    assert.is_true(ok, out)
    assert.equal(("200 "):rep(10), out)
    -- the value as the server took it: inner blanks kept, the trailing ones trimmed
    local pad = srv:last().headers["x-pad"]
    assert.equal(60002, #pad)
    assert.equal("a" .. (" \t"):rep(30000) .. "b", pad)
  end)

  it("the token estimate of an image takes the name of a long model after its last '/' at once", function ()
    -- ("[^/]*$" was tried from each byte of 300 kB to the "/": minutes)
    local ok, out = bounded([[
      local tokens = require "aigc.tokens"
      local msg = { role = "user", content = { { type = "image_url", image_url = { url = "https://x/i.png" } } } }
      io.write(tokens.estimate_message(msg, nil, 0, ("x"):rep(300000) .. "/gpt-4.1-mini"), " ",
               tokens.estimate_message(msg, nil, 0, "gpt-4.1-mini"), " ",
               tokens.estimate_message(msg, nil, 0, ("x"):rep(300000) .. "/"), " ",
               tokens.estimate_message(msg, nil, 0, "x/"))]])
    assert.is_true(ok, out)
    local a, b, c, d = out:match("^(%d+) (%d+) (%d+) (%d+)$")
    assert.equal(b, a)
    assert.equal(d, c)
    assert.not_equal(a, c)   -- (a patch model's image, and the default tiles)
  end)

  it("files_upload_parts takes the name of a long path after its last '/' at once", function ()
    -- ("[^/]*$" was tried from each byte of 300 kB to the "/": minutes; 20 kB, 1 s)
    local ok, out = bounded([[
      local aigc = require "aigc"
      local c = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = "k", max_retries = 0 }
      local _, err = c:files_upload_parts { file = ("x"):rep(300000) .. "/a.jsonl", purpose = "batch" }
      local pok, perr = pcall(c.files_upload_parts, c, { file = ("x"):rep(300000) .. "/", purpose = "batch" })
      io.write(err.kind, " ", tostring(pok), " ", tostring(perr):match("params%.filename[^)]*"))]])
    assert.is_true(ok, out)
    assert.equal("io false params.filename: string expected, got string", out)   -- (the name after the "/": "")
  end)

  it("the command's KEY=VALUE takes a key with 300 kB of blanks inside at once", function ()
    -- ("^%s*(.-)%s*$" on the key: quadratic in its run of blanks)
    local ok, out = bounded([[
      local common = require "aigc.cli.common"
      local k, v = common.key_value("  a" .. (" "):rep(300000) .. "b  =1", "-p")
      io.write(#k, " ", k:sub(1, 2), k:sub(-1), " ", v)]])
    assert.is_true(ok, out)
    assert.equal("300002 a b 1", out)
  end)

  it("dialogue.params_problem gives back an error of 300 kB of '(' raised from the params at once", function ()
    -- (an unanchored "%((.*)%)$" was tried from each "(" when the message does not end with ")")
    local ok, out = bounded([[
      local dialogue = require "aigc.dialogue"
      local boom = setmetatable({}, { __index = function () error(("("):rep(300000), 0) end })
      local why = dialogue.params_problem { schema = boom }
      io.write(#why, " ", why:sub(1, 3))]])
    assert.is_true(ok, out)
    assert.equal("300000 (((", out)
  end)

  it("a batch run reads an OUT.batch whose first line holds 300 kB of blanks at once", function ()
    -- (a torn or hand-edited file: "^%s*([^\n]-)%s*\n" took minutes; the id
    -- is then asked for, here of a server that is not there)
    local ok, out = bounded([[
      local aigc = require "aigc"
      local runner = require "aigc.runner"
      local out = os.tmpname()
      local f = assert(io.open(out .. ".batch", "wb"))
      f:write("  batch_a" .. (" "):rep(300000) .. "b \n{}\n")
      f:close()
      local c = aigc.client { base_url = "http://127.0.0.1:1/v1", api_key = "sk-x", max_retries = 0 }
      local _, err = runner.run { client = c, backend = "batch", template = aigc.template.new { prompt = "{{x}}" },
                                  cases = { { id = "a", vars = { x = "y" } } }, out = out }
      os.remove(out)
      os.remove(out .. ".batch")
      io.write(err.message:sub(1, 40))]])
    assert.is_true(ok, out)
    -- the id kept: its blanks inside, none before it (the message shows it cut short)
    assert.equal("cannot resume batch batch_a             ", out)
  end)

  local function cassette_server (args) return proc.cassette_server(args, finally) end

  -- What a child sends as the request head (no body) that the Lua
  -- expression `head` makes to `port`, five times, gets: the status lines,
  -- one a line.
  local function sent_five (port, head)
    local ok, out = bounded(([[
      local socket = require "socket"
      for _ = 1, 5 do
        local c = assert(socket.tcp())
        c:settimeout(60)
        assert(c:connect("127.0.0.1", %d))
        assert(c:send(%s))
        print((c:receive("*l")))
        c:close()
      end]]):format(port, head))
    assert.is_true(ok, out)
    return out
  end

  it("the cassette server parses a request head with a 300 kB line without a colon at once", function ()
    -- (an unanchored "([^:\r\n]+):" was tried from each of its bytes to its end: minutes)
    local port = cassette_server()
    local out = sent_five(port, [["GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nx-aigc-cassette: miss\r\nX"
                                  .. ("y"):rep(300000) .. "\r\n\r\n"]])
    assert.equal(("HTTP/1.1 404 Not Found\n"):rep(5), out)
  end)

  it("the cassette server, recording, reads an Authorization with 60 kB of blanks inside at once", function ()
    -- (not "scheme credential": "^%s*(.-)%s*$" took its credential to mask, 20 s a request)
    local srv = devserver.start()
    finally(function () srv:stop() end)
    local port = cassette_server("--record " .. srv.url)
    local out = sent_five(port, [["GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nx-aigc-cassette-key: k\r\n"
                                  .. "Authorization: a b" .. (" "):rep(60000) .. "c\r\n\r\n"]])
    assert.equal(("HTTP/1.1 200 OK\n"):rep(5), out)
  end)
end)
