-- The files a cassette makes: a new tape is private (0600, as the prompt
-- log and the disk cache are), one lock per tape whatever link names it,
-- and a FIFO at the tape's path refused, not waited on for ever.

local aigc = require "aigc"
local devserver = require "devserver"
local luachild = require "luachild"
local cli = require "cli"

local mode = require("procutil").mode

describe("cassette files", function ()
  local dir
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  -- An interpreter that runs `setup` (shell lines) first: DIR/NAME.
  local function wrapped_lua (name, setup)
    local wrapper = dir .. "/" .. name
    cli.write(wrapper, "#!/bin/sh\n" .. setup .. "\nexec '" .. luachild.interpreter() .. "' \"$@\"\n")
    os.execute("chmod 755 '" .. wrapper .. "'")
    return wrapper
  end
  -- (a write past `ulimit -f` fails with EFBIG, as on a full disk)
  local FULL_DISK = "trap '' XFSZ\nulimit -f 1"
  -- Child code: a client recording arg[2] from arg[1] (through the proxy
  -- or not: %s), the errors it reports kept in `seen`.
  local RECORDER = [[
    local aigc = require "aigc"
    local seen = {}
    local c = aigc.client { base_url = arg[1], model = "aigc-dev", api_key = "sk-tape-secret-31",
                            error_handler = function (e) seen[#seen + 1] = e end, max_retries = 0,
                            cassette = { path = arg[2], mode = "record", proxy = %s } }
  ]]

  it("makes a new tape 0600 whatever the umask (it holds the prompts and replies)", function ()
    local srv = devserver.start { pause_ms = 0 }
    local wrapper = wrapped_lua("lua-umask-022", "umask 022")
    local r = luachild.run([[
      local aigc = require "aigc"
      for _, proxy in ipairs { true, false } do   -- (the recording proxy's tape, and the client's own)
        local c = aigc.client { base_url = arg[1], model = "aigc-dev",
                                cassette = { path = arg[2] .. "/tape-" .. tostring(proxy) .. ".jsonl",
                                             mode = "record", proxy = proxy } }
        assert(c:chat "Echo: a private prompt")
        c:close()
      end
      print("ok")
    ]], { args = { srv.base_url, dir }, lua = wrapper })
    srv:stop()
    assert.equal(0, r.status, r.stderr)
    for _, proxy in ipairs { "true", "false" } do
      local tape = dir .. "/tape-" .. proxy .. ".jsonl"
      assert.matches("a private prompt", cli.read(tape), 1, true)
      assert.equal("600", mode(tape))
    end
  end)

  it("a second recorder through a link to the tape is refused; the first's exchanges are kept", function ()
    local srv = devserver.start { pause_ms = 0 }
    local path = dir .. "/tape.jsonl"
    local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev",
                              cassette = { path = path, mode = "record", proxy = false } }
    local first = assert(rec:chat "Echo: first recorder")
    os.execute("ln -s tape.jsonl '" .. dir .. "/link.jsonl'")
    local results = {}
    for _, mode_ in ipairs { "record", "auto" } do
      local ok, err = pcall(aigc.client, { base_url = srv.base_url, model = "aigc-dev",
                                           cassette = { path = dir .. "/link.jsonl", mode = mode_ } })
      if ok then err:close() end
      results[mode_] = { ok, tostring(err) }
    end
    rec:close()
    srv:stop()
    for _, mode_ in ipairs { "record", "auto" } do
      assert.is_false(results[mode_][1], mode_)
      assert.matches("aigc.cassette: " .. dir .. "/link.jsonl is being recorded by another client (pid ",
                     results[mode_][2], 1, true)
    end
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev",
                            cassette = { path = path, mode = "replay", timing = false } }
    assert.equal(first.text, assert(c:chat "Echo: first recorder").text)
    c:close()
  end)

  it("refuses a FIFO at the tape's path in every mode (its open waited for a writer for ever)", function ()
    local fifo = dir .. "/tape.jsonl"
    assert(os.execute("mkfifo '" .. fifo .. "'"))
    local r = luachild.run([[
      local aigc = require "aigc"
      for _, mode in ipairs { "record", "replay", "auto" } do
        print(mode, pcall(aigc.client, { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev",
                                         cassette = { path = arg[1], mode = mode } }))
      end
    ]], { args = { fifo }, timeout = 20 })
    assert.equal(0, r.status, r.stderr)
    for _, m in ipairs { "record", "replay", "auto" } do
      assert.matches(m .. "\tfalse\taigc.cassette: " .. fifo .. " is not a regular file (fifo)", r.stdout, 1, true)
    end
  end)

  it("a tape that cannot be written (a full disk) is reported, once, kind io (the exchanges were lost unsaid)",
     function ()
    local srv = devserver.start { pause_ms = 0 }
    local wrapper = wrapped_lua("lua-full-disk", FULL_DISK)
    local r = luachild.run(RECORDER:format("false") .. [[
      for i = 1, 3 do print(assert(c:chat("Echo: " .. ("long "):rep(300) .. i)).text:sub(-1)) end
      c:close()
      for _, e in ipairs(seen) do print(e.kind, e.message) end
    ]], { args = { srv.base_url, dir .. "/tape.jsonl" }, lua = wrapper })
    srv:stop()
    assert.equal(0, r.status, r.stderr)
    assert.equal("1\n2\n3\nio\tthe cassette did not record a call: " .. dir .. "/tape.jsonl: File too large\n",
                 r.stdout)
  end)

  -- The part of a line a full disk let through stayed in the tape: once
  -- space was freed, the next exchange went on after it, one line that is
  -- no JSON in the middle of the tape, and the whole tape was refused ("not
  -- a cassette exchange"). It is cut off now. (Here a limit of 1 KiB: a
  -- long exchange fails, the short one after it fits once the part is cut;
  -- the old code left the limit filled by the part, and lost it too.)
  it("the part of an exchange a full disk cut is removed: the next one is a line of its own", function ()
    local srv = devserver.start { pause_ms = 0 }
    local r = luachild.run(RECORDER:format("false") .. [[
      print(assert(c:chat("Echo: " .. ("long "):rep(300))).text:sub(-4))
      print(assert(c:chat "Echo: short").text)
      c:close()
      for _, e in ipairs(seen) do print(e.kind) end
      local again = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev",
                                  cassette = { path = arg[2], mode = "replay", timing = false } }
      print(assert(again:chat "Echo: short").text)]],
      { args = { srv.base_url, dir .. "/tape.jsonl" }, lua = wrapped_lua("lua-1k", "trap '' XFSZ\nulimit -f 2") })
    srv:stop()
    assert.equal(0, r.status, r.stderr)
    assert.equal("long\nshort\nio\nshort\n", r.stdout)
  end)

  -- The recording proxy (a plain-http upstream) appended with its close
  -- unchecked: on a full disk the calls went on, the tape stayed short,
  -- nothing was said. Its failure is reported as the cassette closes, kind
  -- io, and every later call is answered with it (507, not retried), not
  -- sent on: its exchange would be lost as well.
  it("the recording proxy's tape on a full disk: later calls fail saying so, and the close reports it", function ()
    local srv = devserver.start { pause_ms = 0 }
    local wrapper = wrapped_lua("lua-full-disk", FULL_DISK)
    local r = luachild.run(RECORDER:format("true") .. [[
      for i = 1, 3 do
        local res, err = c:chat("Echo: " .. ("long "):rep(300) .. i)
        print(i, res and res.text:sub(-1) or err.status .. " " .. err.message)
      end
      -- (README: status 507, code cassette_tape, not retried, even where the call allows retries)
      local _, again = c:chat { messages = { { role = "user", content = "Echo: again" } }, max_retries = 2 }
      print("again", again.status, again.code, again.retries, tostring(again.retryable))
      c:close()
      for _, e in ipairs(seen) do print(e.kind, e.message) end
    ]], { args = { srv.base_url, dir .. "/tape.jsonl" }, lua = wrapper, timeout = 30 })
    local requests = #srv:requests()
    srv:stop()
    assert.equal(0, r.status, r.stderr)
    local tape = dir .. "/tape.jsonl"
    assert.matches("^1\t1\n", r.stdout)   -- (the call: made, its reply given; its line lost)
    assert.matches("\n3\t507 cassette recording: could not write " .. tape:gsub("%p", "%%%0")
                   .. ": EFBIG: [Ff]ile too large; %d exchange%(s%) not on the tape\n", r.stdout)
    assert.matches("\nio\tthe cassette did not record a call: could not write " .. tape:gsub("%p", "%%%0")
                   .. ": EFBIG: [Ff]ile too large %(%d exchange%(s%) not on the tape%)\n$", r.stdout)
    assert.matches("\nagain\t507\tcassette_tape\t0\tfalse\n", r.stdout)
    assert.is_true(requests <= 2)   -- (the third was not sent on, nor the one after it)
    assert.equal("", cli.read(tape))   -- (no cut line left)
  end)
end)
