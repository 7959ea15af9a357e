-- `aigc image` and `aigc speak` as processes (bin/aigc) against the bundled
-- server: files checked by ImageMagick's `identify` and sox's `soxi` (when
-- installed), stdout, the params sent, errors and exit codes, Ctrl-C.

local cli = require "cli"
local proc = require "procutil"
local socket = require "socket"

local tool = proc.first_line   -- (nil when the command is not installed)
local HAS_IDENTIFY = tool("command -v identify") ~= nil
local HAS_SOXI = tool("command -v soxi") ~= nil

local exists = proc.exists

describe("aigc image / aigc speak", function ()
  local srv, home, dir
  local aigc = cli.fixture(_ENV, function (s, h) srv, home = s, h end)
  before_each(function ()
    dir = home .. "/out"
    assert(proc.execute("mkdir -p " .. proc.quote(dir)))
  end)

  local function size_of (path)
    return tool("identify -format '%w %h' " .. proc.quote(path))
  end

  it("image -o FILE: writes the PNG, prints its path, sends the prompt, size and model", function ()
    local path = dir .. "/knight.png"
    local r = aigc { "image", "-s", "48x32", "-m", "gpt-image-1", "-q", "low", "a", "knight", "-o", path }
    assert.equal(0, r.code, r.stderr)
    assert.equal(path .. "\n", r.stdout)
    assert.equal("\137PNG\r\n\26\n", proc.read_file(path):sub(1, 8))
    if HAS_IDENTIFY then assert.equal("48 32", size_of(path)) end
    local last = srv:last()
    assert.equal("/v1/images/generations", last.path)
    assert.same({ prompt = "a knight", size = "48x32", model = "gpt-image-1", quality = "low" }, last.body_json)
    -- piped stdin comes first, then the words; --option adds params
    r = aigc({ "image", "-s", "16x16", "--option", "background=transparent", "in oils", "-o", path },
             { stdin = "A castle\n" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("A castle\n\nin oils", srv:last().body_json.prompt)
    assert.equal("transparent", srv:last().body_json.background)
  end)

  it("image -n N: one file each (-1, -2 before the extension, or %d), url images downloaded", function ()
    -- dall-e-2 answers with urls: each image is fetched through the client
    local r = aigc { "image", "-n", "2", "-s", "24x16", "-m", "dall-e-2", "a dog", "-o", dir .. "/dog.png" }
    assert.equal(0, r.code, r.stderr)
    assert.equal(dir .. "/dog-1.png\n" .. dir .. "/dog-2.png\n", r.stdout)
    assert.equal(2, srv:last().body_json.n)
    for i = 1, 2 do
      assert.equal("\137PNG", proc.read_file(dir .. "/dog-" .. i .. ".png"):sub(1, 4))
      if HAS_IDENTIFY then assert.equal("24 16", size_of(dir .. "/dog-" .. i .. ".png")) end
    end
    r = aigc { "image", "-n", "3", "-s", "8x8", "-m", "gpt-image-1", "cats", "-o", dir .. "/cat_%d_.png" }
    assert.equal(0, r.code, r.stderr)
    assert.equal(dir .. "/cat_1_.png\n" .. dir .. "/cat_2_.png\n" .. dir .. "/cat_3_.png\n", r.stdout)
    assert.is_true(exists(dir .. "/cat_3_.png"))
  end)

  it("image -o - (or stdout a pipe and no -o): the PNG's bytes on stdout", function ()
    local r = aigc { "image", "-s", "16x8", "-m", "gpt-image-1", "a door", "-o", "-" }
    assert.equal(0, r.code, r.stderr)
    assert.equal("\137PNG\r\n\26\n", r.stdout:sub(1, 8))
    local again = aigc { "image", "-s", "16x8", "-m", "gpt-image-1", "a door" }
    assert.equal(0, again.code, again.stderr)
    assert.equal(r.stdout, again.stdout)          -- the server's images are a function of the request
    local path = dir .. "/door.png"
    local f = assert(io.open(path, "wb")); f:write(r.stdout); f:close()
    if HAS_IDENTIFY then assert.equal("16 8", size_of(path)) end
    -- a url image (dall-e-2's default on the server) is downloaded straight to stdout
    r = aigc { "image", "-s", "16x8", "-m", "dall-e-2", "a door", "-o", "-" }
    assert.equal(0, r.code, r.stderr)
    assert.equal("\137PNG\r\n\26\n", r.stdout:sub(1, 8))
    assert.equal("dall-e-2", srv:last().body_json.model)   -- (the server's GET of the file is not recorded)
  end)

  it("speak -o FILE: the WAV (format from the extension), voice, speed, model sent", function ()
    local path = dir .. "/line.wav"
    local r = aigc { "speak", "-v", "onyx", "--speed", "2", "Halt, who goes there", "-o", path }
    assert.equal(0, r.code, r.stderr)
    assert.equal(path .. "\n", r.stdout)
    assert.equal("RIFF", proc.read_file(path):sub(1, 4))
    assert.is_false(exists(path .. ".part"))
    local body = srv:last().body_json
    assert.equal("/v1/audio/speech", srv:last().path)
    assert.same({ input = "Halt, who goes there", voice = "onyx", speed = 2, model = "tts-1",
                  response_format = "wav" }, body)
    if HAS_SOXI then
      assert.equal("24000", tool("soxi -r " .. proc.quote(path)))
      -- 20 characters at 50 ms / speed 2: 0.5 s
      assert.equal(0.5, tonumber(tool("soxi -D " .. proc.quote(path))))
    end
    -- -f wins over the extension; the library's default voice
    r = aigc { "speak", "-f", "pcm", "-m", "gpt-4o-mini-tts", "-i", "Gruffly.", "Hi", "-o", dir .. "/x.wav" }
    assert.equal(0, r.code, r.stderr)
    body = srv:last().body_json
    assert.equal("pcm", body.response_format)
    assert.equal("alloy", body.voice)
    assert.equal("Gruffly.", body.instructions)
    assert.not_equal("RIFF", proc.read_file(dir .. "/x.wav"):sub(1, 4))
  end)

  it("speak -o -: the audio on stdout, the same bytes as the file", function ()
    local path = dir .. "/a.wav"
    assert.equal(0, aigc({ "speak", "Welcome, traveller.", "-o", path }).code)
    local r = aigc({ "speak", "-f", "wav", "-o", "-" }, { stdin = "Welcome, traveller.\n" })
    assert.equal(0, r.code, r.stderr)
    assert.equal(proc.read_file(path), r.stdout)
    r = aigc { "speak", "Welcome, traveller." }        -- no -o, stdout not a terminal: mp3 there
    assert.equal(0, r.code, r.stderr)
    assert.equal("mp3", srv:last().body_json.response_format)
    assert.is_true(#r.stdout > 0)
  end)

  it("server errors and cut replies: exit 1, the error on stderr, no file left", function ()
    local path = dir .. "/line.opus"
    local r = aigc { "speak", "Hi", "-o", path }
    assert.equal(1, r.code)
    assert.matches("400", r.stderr)
    assert.matches("opus", r.stderr)
    assert.is_false(exists(path))
    assert.is_false(exists(path .. ".part"))
    path = dir .. "/cut.wav"
    r = aigc { "speak", "A long line that the server will cut short", "-o", path,
               "--option", 'headers={"x-aigc-fault":"drop-after=2"}', "--option", "max_retries=0" }
    assert.equal(1, r.code)
    assert.not_equal("", r.stderr)
    assert.is_false(exists(path))
    assert.is_false(exists(path .. ".part"))
    r = aigc { "image", "-m", "gpt-image-1", "--option", "output_format=webp", "x", "-o", dir .. "/x.webp" }
    assert.equal(1, r.code)
    assert.matches("400", r.stderr)
    -- (a file that cannot be written once the image came: a name too long;
    -- a missing directory is refused before: spec/cli_probe_spec.lua)
    local long = string.rep("x", 300) .. ".png"
    r = aigc { "image", "-m", "gpt-image-1", "-s", "8x8", "x", "-o", dir .. "/" .. long }
    assert.equal(1, r.code)
    assert.matches(long, r.stderr, 1, true)
  end)

  it("image whose url answers with a page (a portal's): exit 1 saying so; no file, nothing on stdout", function ()
    local path = dir .. "/page.png"
    local page = { "--option", 'headers={"x-aigc-fault":"url-page"}', "-m", "dall-e-2", "-s", "16x16", "x" }
    local args = { "image", "-o", path }
    for _, a in ipairs(page) do args[#args + 1] = a end
    local r = aigc(args)
    assert.equal(1, r.code)
    assert.matches("text/html", r.stderr, 1, true)
    assert.matches("not an image", r.stderr, 1, true)
    assert.is_false(exists(path))
    assert.is_false(exists(path .. ".part"))
    args[3] = "-"   -- (a function sink: the page is not written to stdout either)
    r = aigc(args)
    assert.equal(1, r.code)
    assert.equal("", r.stdout)
    assert.matches("not an image", r.stderr, 1, true)
  end)

  it("usage errors: exit 2, nothing sent", function ()
    local cases = {
      { { "image" }, "no prompt" },
      { { "speak" }, "no text" },
      { { "image", "-n", "2", "x", "-o", "-" }, "one image only" },
      { { "image", "-n", "0", "x", "-o", "a.png" }, "%-n must be a whole number" },
      { { "speak", "-f", "ogg", "x", "-o", "a.ogg" }, "unknown format 'ogg'" },
      { { "speak", "x", "-o", "" }, "needs a file name" },
      { { "image", "--option", "novalue", "x", "-o", "a.png" }, "expects KEY=VALUE" },
      { { "image", "--bogus", "x" }, "unknown option '%-%-bogus'" },
    }
    for _, c in ipairs(cases) do
      local r = aigc(c[1])
      assert.equal(2, r.code, table.concat(c[1], " ") .. ": " .. r.stderr)
      assert.matches(c[2], r.stderr)
    end
    -- binary data is never written to a terminal
    for _, cmd in ipairs { "image", "speak" } do
      local r = aigc({ cmd, "x" }, { env = { AIGC_FORCE_TTY = "1" } })
      assert.equal(2, r.code)
      assert.matches("give %-o FILE", r.stderr)
      r = aigc({ cmd, "x", "-o", "-" }, { env = { AIGC_FORCE_TTY = "1" } })
      assert.equal(2, r.code)
    end
    assert.equal(0, #srv:requests())
  end)

  -- A b64_json image was written with io.open and its close() not checked:
  -- on a full disk (here a file size limit of 512 or 1024 bytes, SIGXFSZ
  -- ignored) the 1,180-byte image still in stdio's buffer was cut at close,
  -- and `aigc image` printed its path and exited 0; -o /dev/full did too.
  it("image -o FILE on a full disk: exit 1 saying so, no cut image left (not a path printed, exit 0)", function ()
    local path = dir .. "/mouse.png"
    local args = { "image", "-m", "gpt-image-1", "-s", "64x64", "a mouse", "-o", path }
    local out, err = dir .. "/stdout", dir .. "/stderr"
    local line = "trap '' XFSZ; ulimit -f 1; " .. cli.command(args, { home = home, base_url = srv.base_url })
                 .. " </dev/null >" .. proc.quote(out) .. " 2>" .. proc.quote(err)
    local _, _, code = proc.execute3("sh -c " .. proc.quote(line))
    local stdout, stderr = proc.read_file(out), proc.read_file(err)
    assert.equal(1, code, stdout .. stderr)
    assert.equal("", stdout)
    assert.equal("aigc: could not write " .. path .. ": File too large (image 1)\n", stderr)
    assert.is_false(exists(path))
    assert.is_false(exists(path .. ".part"))
    assert.equal(1, #srv:requests())
  end)

  -- `-o /dev/stdout`, `-o >(player)` (/dev/fd/N of a pipe), a FIFO or a
  -- device were refused before the call (exit 2), and before that stop
  -- `aigc image` wrote them with io.open (a FIFO with no reader: hung for
  -- ever). They are written as they are now, as `curl -o` writes them: no
  -- .part, no rename (renaming over /dev/stdout replaced the link itself).
  local function shell (args, redirs, before)
    local out, err = dir .. "/stdout", dir .. "/stderr"
    local line = "set -o pipefail; " .. (before or "")
                 .. cli.command(args, { home = home, base_url = srv.base_url }) .. " </dev/null 2>"
                 .. proc.quote(err) .. " " .. redirs:gsub("OUT", proc.quote(out))
    local _, _, code = proc.execute3("bash -c " .. proc.quote(line))
    return code, proc.read_file(out) or "", proc.read_file(err) or ""
  end

  it("-o /dev/stdout, /dev/fd/N of a pipe, >(player): the bytes written there, nothing else", function ()
    local png = "^\137PNG\r\n\26\n"
    -- (stdout a file: /dev/fd/1 here, on which the old code failed harmlessly;
    -- over /dev/stdout, as root, it renamed the PNG over the link itself)
    local r = aigc { "image", "-m", "gpt-image-1", "-s", "8x8", "x", "-o", "/dev/fd/1" }
    assert.equal(0, r.code, r.stderr)
    assert.matches(png, r.stdout)
    assert.equal(1, #srv:requests())
    local code, out, err = shell({ "image", "-m", "gpt-image-1", "-s", "8x8", "x", "-o", "/dev/stdout" },
                                 "| cat >OUT")
    assert.equal(0, code, err)
    assert.matches(png, out)
    assert.is_true(proc.execute("test -L /dev/stdout"))
    -- dall-e-2 answers with a url: downloaded through the client, into the pipe
    code, out, err = shell({ "image", "-m", "dall-e-2", "-s", "8x8", "x", "-o", "/dev/fd/3" },
                           "3>&1 >/dev/null | cat >OUT")
    assert.equal(0, code, err)
    assert.matches(png, out)
    code, out, err = shell({ "speak", "Halt!", "-o", "/dev/fd/3" }, "3>&1 >/dev/null | cat >OUT")
    assert.equal(0, code, err)
    assert.equal("\255\243\68\192", out:sub(1, 4))   -- (mp3: no extension to choose another)
    local wav = dir .. "/line.wav"
    local line = cli.command({ "speak", "Halt!", "-f", "wav" }, { home = home, base_url = srv.base_url })
                 .. " -o >(cat >" .. proc.quote(wav) .. ") </dev/null >/dev/null 2>" .. proc.quote(dir .. "/err")
                 .. "; wait"
    local _, _, c2 = proc.execute3("bash -c " .. proc.quote(line))
    assert.equal(0, c2, proc.read_file(dir .. "/err"))
    cli.wait_until(function () return (proc.read_file(wav) or ""):sub(1, 4) == "RIFF" end,
                   "the WAV through the pipe", 20)
  end)

  -- stdout a socket (journald's, under systemd; libuv's stdio pipes): it
  -- cannot be opened by its name (ENXIO), which was told as "no process
  -- reads it". -o /dev/stdout writes it as -o - does now.
  it("-o /dev/stdout when stdout is a socket: the bytes on it, as -o - writes them", function ()
    local uv = require "luv"
    local out, got, code = uv.new_pipe(false), {}, nil
    local line = cli.command({ "image", "-m", "gpt-image-1", "-s", "8x8", "x", "-o", "/dev/stdout" },
                             { home = home, base_url = srv.base_url }) .. " </dev/null"
    local child = uv.spawn("sh", { args = { "-c", line }, stdio = { nil, out, 2 } }, function (c) code = c end)
    assert.is_truthy(child)
    out:read_start(function (_, data) if data then got[#got + 1] = data else out:close() end end)
    local deadline = socket.gettime() + 20
    while (code == nil or not out:is_closing()) and socket.gettime() < deadline do uv.run("once") end
    child:close()
    if not out:is_closing() then out:close() end
    uv.run("nowait")   -- (the closes done: luv crashed at exit with them pending)
    assert.equal(0, code)
    assert.matches("^\137PNG\r\n\26\n", table.concat(got))
    local ok, why = require("aigc").core.media.open_through(dir)
    assert.is_nil(ok)
    assert.matches("Is a directory", why)
    -- (another descriptor's socket, /dev/fd/3: told as one, not as a FIFO without a reader)
    local sock = uv.new_pipe(false)
    assert(sock:bind(dir .. "/s.sock"))
    ok, why = require("aigc").core.media.open_through(dir .. "/s.sock")
    sock:close()
    uv.run("nowait")
    assert.is_nil(ok)
    assert.equal("could not write " .. dir .. "/s.sock: it is a socket, which cannot be opened by its name", why)
  end)

  it("-o a FIFO: written through while read; none reading: exit 2 before the call, no hang", function ()
    local fifo = dir .. "/pipe.png"
    assert(proc.execute("mkfifo " .. proc.quote(fifo)))
    local code, _, err = shell({ "image", "x", "-o", fifo }, ">OUT")
    assert.equal(2, code)
    assert.equal("aigc image: -o " .. fifo .. ": no process reads it (a FIFO or a pipe is written only"
                 .. " while it is read)\n", err)
    code, _, err = shell({ "speak", "x", "-o", fifo }, ">OUT")
    assert.equal(2, code)
    assert.matches("aigc speak: %-o .*: no process reads it", err)
    assert.equal(0, #srv:requests())
    local got = dir .. "/got.png"
    code, _, err = shell({ "image", "-m", "gpt-image-1", "-s", "8x8", "x", "-o", fifo }, ">OUT",
                         "cat " .. proc.quote(fifo) .. " >" .. proc.quote(got) .. " & ")
    assert.equal(0, code, err)
    cli.wait_until(function () return (proc.read_file(got) or ""):sub(1, 4) == "\137PNG" end, "the PNG", 20)
    assert.equal("fifo", require("aigc").core.file_kind(fifo))   -- (not replaced by a file)
  end)

  it("-o a device: written as it is (/dev/null), each write checked (/dev/full: exit 1 saying so)", function ()
    local r = aigc { "image", "-m", "gpt-image-1", "-s", "8x8", "x", "-o", "/dev/null" }
    assert.equal(0, r.code, r.stderr)
    assert.equal("", r.stdout)
    r = aigc { "image", "-m", "gpt-image-1", "-s", "8x8", "x", "-o", "/dev/full" }
    assert.equal(1, r.code)
    assert.equal("aigc: could not write /dev/full: No space left on device (image 1)\n", r.stderr)
    r = aigc { "speak", "x", "-o", "/dev/full" }
    assert.equal(1, r.code)
    assert.equal("aigc: could not write /dev/full: No space left on device\n", r.stderr)
    r = aigc { "image", "-n", "2", "x", "-o", "/dev/null" }
    assert.equal(2, r.code)
    assert.matches("one image only", r.stderr)
  end)

  -- README (aigc image/speak): "a terminal or a block device is refused
  -- before the call (exit 2, never a hang)".
  it("-o a terminal (/dev/tty) or a block device: exit 2 before the call, nothing written", function ()
    local before = #srv:requests()
    if tool("command -v script") then   -- (util-linux: a pseudo-terminal for the command)
      local out = os.tmpname()
      local cmd = cli.command({ "speak", "x", "-o", "/dev/tty" }, { home = home, base_url = srv.base_url })
      local _, _, code = proc.execute3("script -qec " .. proc.quote(cmd) .. " /dev/null </dev/null >"
                                       .. proc.quote(out))
      local shown = cli.read(out) or ""
      os.remove(out)
      assert.equal(2, code, shown)
      assert.matches("aigc speak: -o /dev/tty: it is a terminal (binary data is not written there)", shown, 1, true)
    end
    -- (a node of a loop device no kernel has: even opened, nothing could be written)
    local blk = home .. "/disk"
    if proc.execute("mknod " .. proc.quote(blk) .. " b 7 250 2>/dev/null") then
      for _, cmd in ipairs { "image", "speak" } do
        local r = aigc { cmd, "x", "-o", blk }
        assert.equal(2, r.code, r.stderr)
        assert.matches("-o " .. blk .. " is a device, not a regular file", r.stderr, 1, true)
      end
    end
    assert.equal(before, #srv:requests())
  end)

  it("SIGINT (Ctrl-C) cancels speech mid-stream: exit 130, no file left, the request closed", function ()
    local path = dir .. "/long.wav"
    local job = cli.background({ "speak", "A long speech that takes its time to arrive", "-o", path,
                                 "--option", 'headers={"x-aigc-fault":"pause=150"}' },
                               { home = home, base_url = srv.base_url })
    local deadline = socket.gettime() + 10
    local function wait (fn, what)
      while not fn() do
        assert.is_true(socket.gettime() < deadline, "timed out: " .. what)
        socket.sleep(0.02)
      end
    end
    wait(function () return exists(path .. ".part") and srv:stats().open_now == 1 end, "the audio to start")
    os.execute("kill -INT " .. job.pid)
    assert.equal(130, job.wait_exit(deadline))
    wait(function () return srv:stats().open_now == 0 end, "the request to close")
    assert.is_false(exists(path))
    assert.is_false(exists(path .. ".part"))
  end)
end)
