-- The response cache's disk entries: private (0700 folder, 0600 files)
-- and written by several processes at once without one clobbering the
-- other's file.

local cache = require "aigc.cache"
local cli = require "cli"
local luachild = require "luachild"

local procutil = require "procutil"
local mode = procutil.mode

-- The files in `dir`, but the cache's format marks (`.format2`, `.format2-began`).
local function list (dir)
  local names, p = {}, assert(io.popen("ls -A " .. procutil.quote(dir)))
  for name in p:lines() do if not name:find("^%.format2") then names[#names + 1] = name end end
  p:close()
  return names
end

describe("the response cache on disk", function ()
  local dir
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  it("makes its folder 0700 and its files 0600 whatever the umask (they hold the replies)", function ()
    -- A child with umask 022 (the usual one): the folder it makes, and
    -- the files it writes, in it and in a folder the user made.
    os.execute("mkdir -m 755 '" .. dir .. "/given'")
    local wrapper = dir .. "/lua-umask-022"
    cli.write(wrapper, "#!/bin/sh\numask 022\nexec '" .. luachild.interpreter() .. "' \"$@\"\n")
    os.execute("chmod 755 '" .. wrapper .. "'")
    local r = luachild.run([[
      local cache = require "aigc.cache"
      local a = cache.new { dir = arg[1] .. "/made/sub" }
      a:put("k", { text = "a private reply" })
      local b = cache.new { dir = arg[1] .. "/given" }
      b:put("k", { text = "a private reply" })
      print("ok")
    ]], { args = { dir }, lua = wrapper })
    assert.equal(0, r.status, r.stderr)
    assert.equal("700", mode(dir .. "/made"))
    assert.equal("700", mode(dir .. "/made/sub"))
    for _, sub in ipairs { "made/sub", "given" } do
      local names = list(dir .. "/" .. sub)
      assert.equal(1, #names)
      assert.matches("%.json$", names[1])
      assert.equal("600", mode(dir .. "/" .. sub .. "/" .. names[1]))
    end
  end)

  it("two processes seeded alike write through temporary files of their own", function ()
    -- LuaJIT's and Lua 5.1's math.random start from one seed in every
    -- process (and a script may seed it for reproducible runs): a
    -- temporary name drawn from it alone was the same in two processes,
    -- which then wrote into one file (a torn entry, or one renamed away
    -- under the other).
    local script = [[
      math.randomseed(7)
      local cache = require "aigc.cache"
      local c = cache.new { dir = arg[1] }
      local open = io.open
      io.open = function (path, how)
        if path:find("%.tmp") then print(path) end
        return open(path, how)
      end
      c:put("same key", { text = "reply" })
    ]]
    local a = luachild.run(script, { args = { dir } })
    local b = luachild.run(script, { args = { dir } })
    assert.equal(0, a.status, a.stderr)
    assert.equal(0, b.status, b.stderr)
    local ta, tb = a.stdout:match("[^\n]+"), b.stdout:match("[^\n]+")
    assert.is_string(ta)
    assert.is_string(tb)
    assert.are_not.equal(ta, tb)
    local c = cache.new { dir = dir }
    assert.equal("reply", c:get("same key").text)
  end)

  it("two states of one process seeded alike write through temporary files of their own", function ()
    -- A C host's lua_States (a game's, LuaJIT's) share the pid, and each
    -- counted its writes from 1 and drew from a generator started from one
    -- seed: the two named their temporary files alike, and two writes of
    -- one entry at once went into one file (a torn entry).
    local host, why = luachild.host()
    if not host then pending(why); return end
    local WRITE = [[
      math.randomseed(7)
      local cache = require "aigc.cache"
      local c = cache.new { dir = ... }
      local open, names = io.open, {}
      io.open = function (path, how)
        if path:find("%.tmp") then names[#names + 1] = path end
        return open(path, how)
      end
      c:put("same key", { text = "reply" })
      io.open = open
      return table.concat(names, " ")
    ]]
    -- (a second state first, then the host's own: one process, one pid)
    local r = luachild.run(("local WRITE = %q\n"):format(WRITE) .. [[
      assert(aigc_host_closed_state("print((function (...) " .. WRITE .. " end)(...))", arg[1]))
      print(assert((loadstring or load)(WRITE))(arg[1]))
    ]], { args = { dir }, lua = host })
    assert.equal(0, r.status, r.stderr)
    local a, b = r.stdout:match("^([^\n]+)\n([^\n]+)\n$")
    assert.matches("%.json%.tmp", a)
    assert.matches("%.json%.tmp", b)
    assert.are_not.equal(a, b)
    assert.equal("reply", cache.new({ dir = dir }):get("same key").text)
  end)

  it("a write that fails at its end (a full disk) leaves the entry it would replace, and no file", function ()
    local folder = dir .. "/full"
    local c = cache.new { dir = folder }
    c:put("k", { text = "the first reply" })
    local open = io.open
    io.open = function (path, how)   -- luacheck: ignore 122
      local f, why = open(path, how)
      if not (f and path:find("%.tmp")) then return f, why end
      -- (buffered: the write seems to succeed; half of it reaches the disk, the flush fails)
      return { write = function (self, s) f:write(s:sub(1, math.floor(#s / 2))) return self end,
               close = function () f:close() return nil, "No space left on device" end }
    end
    local ok, err = pcall(c.put, c, "k", { text = "the second reply" })
    io.open = open   -- luacheck: ignore 122
    assert(ok, err)
    assert.equal("the first reply", cache.new({ dir = folder }):get("k").text)
    assert.equal(1, #list(folder))
  end)

  it("a write starts no process (a shell made each file 0600: a fork and exec per write), in a folder named"
     .. " with quotes, $() and a newline", function ()
    local folder = dir .. "/it's $(touch pwned)\n`touch pwned2`"
    local c = cache.new { dir = folder, ttl = 3600 }
    c:put("k0", { text = "reply 0" })   -- (its TTL sweep lists the folder: once an hour, a `find`)
    local execute, popen, started = os.execute, io.popen, {}
    os.execute = function (cmd) started[#started + 1] = cmd return execute(cmd) end   -- luacheck: ignore 122
    io.popen = function (cmd, ...) started[#started + 1] = cmd return popen(cmd, ...) end   -- luacheck: ignore 122
    local ok, err = pcall(function ()
      for i = 1, 5 do c:put("k" .. i, { text = "reply " .. i }) end
    end)
    os.execute, io.popen = execute, popen   -- luacheck: ignore 122
    assert(ok, err)
    assert.same({}, started)
    assert.equal("reply 3", cache.new({ dir = folder }):get("k3").text)
    local names = list(folder)
    assert.equal(6, #names)
    for _, name in ipairs(names) do
      if name ~= ".key" then assert.equal("600", mode(folder .. "/" .. name)) end
    end
    assert.is_nil(io.open(dir .. "/pwned"))
    assert.is_nil(io.open("pwned"))
  end)

  it("opening a folder, its key, its TTL sweep and its size cap start no process (mkdir, find, head, ln)",
     function ()
    local folder = dir .. "/it's $(touch pwned)\n/new"
    local execute, popen, started = os.execute, io.popen, {}
    os.execute = function (cmd) started[#started + 1] = cmd return execute(cmd) end   -- luacheck: ignore 122
    io.popen = function (cmd, ...) started[#started + 1] = cmd return popen(cmd, ...) end   -- luacheck: ignore 122
    local ok, err = pcall(function ()
      local c = cache.new { dir = folder, ttl = 3600, max_disk_bytes = 1500 }
      assert.is_string(c:digest("sk-fake-key"))   -- (the folder's .key made)
      for i = 1, 10 do c:put("k" .. i, { text = ("reply %d "):format(i):rep(20) }) end
      c.scanned_at, c.swept_at = c.scanned_at - 61, c.swept_at - 3601   -- (a minute and an hour on)
      c:put("k11", { text = "the last reply" })
    end)
    os.execute, io.popen = execute, popen   -- luacheck: ignore 122
    assert(ok, err)
    assert.same({}, started)
    assert.equal("700", mode(folder))
    local names, bytes = list(folder), 0
    for _, name in ipairs(names) do
      if name:find("%.json$") then bytes = bytes + #cli.read(folder .. "/" .. name) end
    end
    assert.is_true(bytes > 0 and bytes <= 1500, bytes .. " bytes")   -- the cap held
    assert.equal(32, #cli.read(folder .. "/.key"))
    assert.equal("600", mode(folder .. "/.key"))
    assert.equal("the last reply", cache.new({ dir = folder }):get("k11").text)
    assert.is_nil(io.open(dir .. "/pwned"))
  end)

  it("a FIFO as the folder's .key: no key (a call with a credential is not cached), no wait for ever", function ()
    local folder = dir .. "/fifokey"
    assert(os.execute("mkdir " .. procutil.quote(folder)))
    assert(procutil.execute("mkfifo " .. procutil.quote(folder .. "/.key")))
    local r = luachild.run([[
      local c = require("aigc.cache").new { dir = arg[1] }
      print(c:digest("sk-fake-key"), c:call_key("k", nil, nil, {}, { "sk-fake-key" }))
    ]], { args = { folder }, timeout = 10 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("nil\tnil\n", r.stdout)
  end)

  it("an entry file larger than any it writes is not read (a miss), and a reply that large is not written",
     function ()
    local folder = dir .. "/big"
    local c = cache.new { dir = folder, max_bytes = 1000 }
    c:put("k", { text = "the first reply" })
    local name = list(folder)[1]
    local x = require("aigc.core").json.decode(cli.read(folder .. "/" .. name))
    local v = require("aigc.core").json.decode(x.value)
    v.padding = ("p"):rep(5000)   -- (past 4 x max_bytes; a gigabyte was read whole)
    x.value = require("aigc.core").json.encode(v)
    cli.write(folder .. "/" .. name, require("aigc.core").json.encode(x))
    local again = cache.new { dir = folder, max_bytes = 1000 }
    assert.is_nil(again:get("k"))
    assert.equal(1, again:stats().misses)
    again:put("k2", { text = ("q"):rep(5000) })
    assert.same({ name }, list(folder))
  end)

  it("a write whose rename fails (a folder at the entry's name) leaves no temporary file", function ()
    local folder = dir .. "/dirent"
    local c = cache.new { dir = folder }
    c:put("k", { text = "the first reply" })
    local name = list(folder)[1]
    assert(os.remove(folder .. "/" .. name))
    assert(os.execute("mkdir " .. procutil.quote(folder .. "/" .. name)))
    for _ = 1, 3 do c:put("k", { text = "another reply" }) end
    assert.same({ name }, list(folder))
  end)

  it("an entry that is not a regular file (a FIFO) is a miss, and the reply stored over it (the call hung)",
     function ()
    local folder = dir .. "/fifo"
    cache.new({ dir = folder }):put("k", { text = "the first reply" })
    local name = list(folder)[1]
    assert(os.remove(folder .. "/" .. name))
    assert(require("procutil").execute("mkfifo '" .. folder .. "/" .. name .. "'"))
    local r = luachild.run([[
      local cache = require "aigc.cache"
      local c = cache.new { dir = arg[1] }
      print(c:get("k") == nil, c:stats().misses)
      c:put("k", { text = "the second reply" })
      print(cache.new({ dir = arg[1] }):get("k").text)
    ]], { args = { folder }, timeout = 10 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("true\t1\nthe second reply\n", r.stdout)
  end)

  it("a folder that cannot be made or written in is an error naming it when the client is made", function ()
    local aigc = require "aigc"
    cli.write(dir .. "/a-file", "not a folder\n")
    local cases = {
      { dir .. "/a-file/cache", "Not a directory" },   -- under a regular file
      { dir .. "/a-file", "it is a file, not a folder" },
      { "/proc/self", "cannot write in it" },            -- a folder nobody writes in, root neither
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(aigc.client, { base_url = "http://127.0.0.1:9/v1", cache = { dir = case[1] } })
      assert.is_false(ok, case[1])
      assert.matches("aigc.cache: cannot keep replies in the folder " .. case[1], err, 1, true)
      assert.matches(case[2], err, 1, true)
    end
    -- a folder that can be made is made, and the probe leaves nothing in it
    local c = aigc.client { base_url = "http://127.0.0.1:9/v1", cache = { dir = dir .. "/new/sub" } }
    c:close()
    assert.same({}, list(dir .. "/new/sub"))
  end)

  -- A time far ahead of now (a clock set wrong, an entry edited) made the
  -- age negative: the entry was served for ever under any ttl.
  it("an entry dated ahead of now by more than 60 s is expired under a ttl; a few seconds ahead is served",
     function ()
    local folder = dir .. "/ahead"
    local json = require("aigc.core").json
    local c = cache.new { dir = folder, ttl = 3600 }
    c:put("far", { text = "next year's" })
    c:put("near", { text = "a skewed clock's" })
    local function date (key, ahead)
      for _, name in ipairs(list(folder)) do
        local x = json.decode(cli.read(folder .. "/" .. name))
        if x.key == key then
          x.time = os.time() + ahead
          cli.write(folder .. "/" .. name, json.encode(x))
        end
      end
    end
    date("far", 365 * 86400)
    date("near", 5)
    local again = cache.new { dir = folder, ttl = 3600 }
    assert.is_nil(again:get("far"))
    assert.equal("a skewed clock's", again:get("near").text)
    assert.equal(1, #list(folder))   -- (the expired file removed when read)
    -- without a ttl nothing expires, a date ahead neither
    date("near", 365 * 86400)
    assert.equal("a skewed clock's", cache.new({ dir = folder }):get("near").text)
    -- a ttl shorter than 60 s is the allowance
    assert.is_nil(cache.new({ dir = folder, ttl = 5 }):get("near"))
  end)

  it("the TTL sweep and max_disk_bytes remove only the cache's own files from a folder the user gave", function ()
    local folder = dir .. "/mixed"
    os.execute("mkdir '" .. folder .. "'")
    cli.write(folder .. "/.format2", "")   -- (a folder of this format: its entries are read)
    cli.write(folder .. "/config.json", string.rep("c", 500))
    cli.write(folder .. "/0123456789abcdef.json", string.rep("e", 500))   -- (an entry of ours, old)
    os.execute("touch -d '2 hours ago' '" .. folder .. "/config.json' '" .. folder .. "/0123456789abcdef.json'")
    local c = cache.new { dir = folder, ttl = 60, max_disk_bytes = 300 }
    c:put("k", { text = "new" })
    local names = list(folder)
    table.sort(names)
    assert.equal(2, #names)
    assert.equal("config.json", names[2])   -- the user's file stays, old and over the cap
    assert.matches("^%x+%.json$", names[1])  -- the new entry; the old one went
    assert.are_not.equal("0123456789abcdef.json", names[1])
  end)

  it("an entry larger than max_disk_bytes is not written (it emptied the folder of every other entry)", function ()
    local folder = dir .. "/capped"
    local c = cache.new { dir = folder, max_disk_bytes = 20000 }
    for i = 1, 10 do c:put("k" .. i, { text = ("reply %d "):format(i):rep(20) }) end
    c:put("k1", { text = "an older reply of the key the huge one replaces" })
    c:put("huge", { text = ("x"):rep(30000) })
    c:put("k1", { text = ("y"):rep(30000) })   -- (the key's older entry goes: it is no longer its reply)
    local again = cache.new { dir = folder }
    assert.equal(9, #list(folder))
    assert.is_nil(again:get("huge"))
    assert.is_nil(again:get("k1"))
    assert.equal(("reply 10 "):rep(20), again:get("k10").text)
  end)

  it("max_disk_bytes holds in a folder whose name has a newline (its listing, the TTL sweep's too, read no file)",
     function ()
    local folder = dir .. "/a\nb c"
    local c = cache.new { dir = folder, max_disk_bytes = 2000 }
    for i = 1, 30 do c:put("k" .. i, { text = ("reply %d "):format(i):rep(20) }) end
    local n = #list(folder)
    assert.is_true(n > 0 and n <= 10, n .. " files")
    assert.is_table(cache.new({ dir = folder }):get("k30"))
  end)

  it("max_disk_bytes and the stale-file sweep hold in a folder given as a symbolic link (find listed the link)",
     function ()
    os.execute("mkdir " .. procutil.quote(dir .. "/real") .. " && ln -s real " .. procutil.quote(dir .. "/link"))
    local stale = dir .. "/real/0123456789abcdef.json.tmp999999999.1.00ff"
    cli.write(stale, "torn")
    os.execute("touch -d '2 hours ago' " .. procutil.quote(stale))
    local c = cache.new { dir = dir .. "/link", max_disk_bytes = 2000 }
    for i = 1, 30 do c:put("k" .. i, { text = ("reply %d "):format(i):rep(20) }) end
    local n = #list(dir .. "/real")
    assert.is_true(n > 0 and n <= 10, n .. " files")
    assert.is_nil(io.open(stale))
    assert.is_table(cache.new({ dir = dir .. "/link" }):get("k30"))
  end)

  it("a relative folder named like an option (-delete) is a folder: the current directory's files stay", function ()
    -- (its `find -delete -maxdepth 1 ...` took the name for find's action: every file of the
    -- current directory was removed). A child whose current directory is a sandbox.
    local sandbox = dir .. "/cwd"
    os.execute("mkdir -p " .. procutil.quote(sandbox .. "/-delete") .. " && touch "
               .. procutil.quote(sandbox .. "/mine.txt") .. " " .. procutil.quote(sandbox .. "/mine.json"))
    local root = procutil.first_line("pwd")
    local cpath = (os.getenv("AIGC_CPATH") or "./?.so"):gsub("^%./", "")
    local wrapper = dir .. "/lua-in-sandbox"
    -- (the ASan suites' interpreter is a path in this checkout, build/asan/lua: from the sandbox, made absolute)
    local interpreter = luachild.interpreter()
    if interpreter:find("/", 1, true) and interpreter:sub(1, 1) ~= "/" then interpreter = root .. "/" .. interpreter end
    cli.write(wrapper, "#!/bin/sh\ncd " .. procutil.quote(sandbox) .. " || exit 9\n"
      .. "LUA_PATH=" .. procutil.quote(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;") .. " "
      .. "LUA_CPATH=" .. procutil.quote(root .. "/" .. cpath .. ";;") .. " "
      .. "exec " .. procutil.quote(interpreter) .. " \"$@\"\n")
    os.execute("chmod 755 " .. procutil.quote(wrapper))
    local r = luachild.run([[
      local c = require("aigc.cache").new { dir = "-delete", max_disk_bytes = 1000, ttl = 1 }
      c:put("k", { text = "a reply" })
      c:put("k2", { text = ("a longer reply"):rep(10) })
      print(require("aigc.cache").new({ dir = "-delete" }):get("k2") ~= nil)
    ]], { lua = wrapper })
    assert.equal(0, r.status, r.stderr)
    assert.equal("true\n", r.stdout)
    assert.is_not_nil(io.open(sandbox .. "/mine.txt"))
    assert.is_not_nil(io.open(sandbox .. "/mine.json"))
    assert.equal("directory", require("aigc.core").file_kind(sandbox .. "/-delete"))
  end)

  it("removes the stale temporary files a killed writer left, and only those", function ()
    -- (a process killed between its write and its rename leaves NAME.json.tmpPID.N.R: they stayed for ever)
    local folder = dir .. "/c"
    os.execute("mkdir '" .. folder .. "'")
    cli.write(folder .. "/.format2", "")   -- (a folder of this format: its entries are read)
    local function touch (name, age)
      cli.write(folder .. "/" .. name, "{}")
      if age then os.execute("touch -d '" .. age .. "' '" .. folder .. "/" .. name .. "'") end
    end
    touch("0123456789abcdef.json.tmp999999999.1.42", "2 hours ago")   -- no such process: stale
    touch(".probe.tmp999999999.1.43", "2 hours ago")                   -- (the folder's write probe)
    touch("0123456789abcdef.json.tmp1.1.44", "2 hours ago")            -- pid 1 lives: maybe writing still
    touch("0123456789abcdef.json.tmp999999999.2.45")                  -- fresh: maybe in progress
    touch("notes.tmp.txt", "2 hours ago")                              -- not ours
    touch("0123456789abcdef.json", "2 hours ago")                      -- an entry (no ttl: kept)
    cache.new { dir = folder }
    local names = list(folder)
    table.sort(names)
    assert.same({ "0123456789abcdef.json", "0123456789abcdef.json.tmp1.1.44",
                  "0123456789abcdef.json.tmp999999999.2.45", "notes.tmp.txt" }, names)
  end)
end)

describe("the response cache's entries of an earlier key format", function ()
  local dir
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  it("are removed, once, by the first cache to open the folder; the user's files and .key stay", function ()
    -- (never read again -- their names are hashes of keys no call makes now -- they stayed
    -- for ever without a ttl, those of the first format with unsalted hashes of the calls' keys)
    local folder = dir .. "/c"
    os.execute("mkdir '" .. folder .. "'")
    local old = '{"key":"http://h/v1 POST /chat/completions {\\"api_key\\":\\"[secret 0123456789abcdef]\\"}",'
      .. '"time":1,"value":"{}"}'
    cli.write(folder .. "/0123456789abcdef.json", old)
    cli.write(folder .. "/config.json", "{}")
    cli.write(folder .. "/.key", string.rep("k", 32))
    local c = cache.new { dir = folder }
    local names = list(folder)
    table.sort(names)
    assert.same({ ".key", "config.json" }, names)
    assert.equal("file", require("aigc.core").file_kind(folder .. "/.format2"))
    -- entries of this format stay: the next cache to open the folder reads them
    c:put("k", { text = "kept" })
    local again = cache.new { dir = folder }
    assert.equal("kept", again:get("k").text)
    assert.equal(3, #list(folder))
  end)

  -- Two processes opening a fresh folder at once: the later one had found
  -- no `.format2` before the other made it, and removed every entry, the
  -- ones the other had written since too. Now only those older than the
  -- first one's start (`.format2-began`, made once) go.
  it("a cache that found no mark while another opened the folder removes the old entries, not the other's", function ()
    local folder = dir .. "/c"
    os.execute("mkdir '" .. folder .. "'")
    cli.write(folder .. "/0123456789abcdef.json", '{"key":"old","time":1,"value":"{}"}')
    local first = cache.new { dir = folder }
    assert.same({}, list(folder))
    -- (the first one began 10 s ago: its entry is newer than that, as any it writes later)
    assert(procutil.execute("touch -d @" .. (os.time() - 10) .. " '" .. folder .. "/.format2-began'"))
    first:put("k", { text = "the first one's" })
    cli.write(folder .. "/fedcba9876543210.json", '{"key":"old too","time":1,"value":"{}"}')
    assert(procutil.execute("touch -d @" .. (os.time() - 3600) .. " '" .. folder .. "/fedcba9876543210.json'"))
    os.remove(folder .. "/.format2")   -- (the second one looked before the first one made it)
    local second = cache.new { dir = folder }
    local got = second:get("k")
    assert.is_table(got, "the first one's entry was removed")
    assert.equal("the first one's", got.text)
    assert.equal(1, #list(folder))   -- (the old entry, older than the first one's start: gone)
    assert.equal("file", require("aigc.core").file_kind(folder .. "/.format2"))
  end)
end)

describe("the response cache and media replies that stream", function ()
  local devserver = require "devserver"
  local aigc = require "aigc"
  local srv, dir
  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () srv:stop() end)
  before_each(function () dir = cli.home(); srv:reset() end)
  after_each(function () cli.rmdir(dir) end)

  local read = require("procutil").read_file

  it("speech as bytes (audio, no text) marked cache = true is kept, in memory and on disk, and hit", function ()
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = { dir = dir .. "/c" } }
    local first = assert(c:speech { input = "Say it once", cache = true })
    assert.is_truthy(first.body:find("[\128-\255]"))   -- (bytes a JSON string cannot hold)
    local again = assert(c:speech { input = "Say it once", cache = true })
    c:close()
    assert.is_true(again.cached)
    assert.equal(first.body, again.body)
    assert.equal(first.content_type, again.content_type)
    local other = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = { dir = dir .. "/c" } }
    local from_disk = assert(other:speech { input = "Say it once", cache = true })
    other:close()
    assert.is_true(from_disk.cached)
    assert.equal(first.body, from_disk.body)
    assert.equal(1, #srv:requests())
  end)

  it("speech written to a file (to =) marked cache = true is sent each time and writes each file", function ()
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = true }
    local first = assert(c:speech { input = "Say it once", to = dir .. "/one.mp3", cache = true })
    local again = assert(c:speech { input = "Say it once", to = dir .. "/two.mp3", cache = true })
    c:close()
    assert.is_nil(again.cached)
    assert.equal(dir .. "/two.mp3", again.path)
    assert.equal(2, #srv:requests())
    local one = read(dir .. "/one.mp3")
    assert.is_true(#one > 0)
    assert.equal(one, read(dir .. "/two.mp3"))
    assert.equal(dir .. "/one.mp3", first.path)
  end)

  it("a streamed image generation marked cache = true calls its stream function each time", function ()
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", cache = true }
    local events = { 0, 0 }
    for i = 1, 2 do
      assert(c:images_generate { prompt = "a red square", cache = true,
                                 stream = function () events[i] = events[i] + 1 end })
    end
    c:close()
    assert.is_true(events[1] > 0)
    assert.equal(events[1], events[2])
    assert.equal(2, #srv:requests())
  end)
end)
