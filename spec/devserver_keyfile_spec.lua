-- The bundled server's key from a file (--api-key-file): `--api-key KEY`
-- put the key on the command line, where any `ps` shows it, and the specs'
-- helper started every keyed server that way.

local devserver = require "devserver"
local proc = require "procutil"

local function write (path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function post_status (port, headers)
  local _, status = devserver.http("POST", "http://127.0.0.1:" .. port .. "/v1/chat/completions",
                        '{"messages": [{"role": "user", "content": "Hi"}]}', headers)
  return status
end

describe("devserver --api-key-file", function ()
  local KEY = "sk-test-keyfile-0123456789"

  -- (the server runs on Lua 5.4 whatever runs the specs: its own process)
  local function refused (args)
    local q = {}
    for i, a in ipairs(args) do q[i] = proc.quote(a) end
    local ok, out = proc.sh("lua5.4 lua/aigc/devserver.lua --port 0 --exit-after 5 " .. table.concat(q, " "))
    assert.is_false(ok)
    assert.is_nil(out:find(KEY, 1, true))
    return out
  end

  it("the file's one line is the key (spaces and CRLF dropped); a bad file: refused, never its text shown", function ()
    local path = os.tmpname()
    finally(function () os.remove(path) end)
    write(path, "  " .. KEY .. "\r\n")
    local srv = devserver.start { args = { "--api-key-file=" .. path } }
    finally(function () srv:stop() end)
    assert.equal(401, post_status(srv.port))
    assert.equal(200, post_status(srv.port, { Authorization = "Bearer " .. KEY }))
    assert.matches("^%-%-api%-key and %-%-api%-key%-file: give one\n",
                   refused { "--api-key-file", path, "--api-key", "sk-other" })
    write(path, KEY .. "\nsk-second-line-key\n")
    assert.equal("--api-key-file " .. path .. ": one key on one line expected\n", refused { "--api-key-file", path })
    write(path, " \n")
    assert.equal("--api-key-file " .. path .. ": no key in it\n", refused { "--api-key-file", path })
    -- (a key, 300 kB of spaces, a word: "^%s*(.-)%s*$" was quadratic in the run, minutes;
    -- 60 s is a hang's bound, the refusal now takes milliseconds)
    write(path, KEY .. string.rep(" ", 300000) .. "x\n")
    local ok, out = proc.sh("timeout 60 lua5.4 lua/aigc/devserver.lua --port 0 --exit-after 5 --api-key-file "
                            .. proc.quote(path))
    assert.is_false(ok)
    assert.equal("--api-key-file " .. path .. ": one key on one line expected\n", out)
    os.remove(path)
    assert.equal("cannot read --api-key-file: " .. path .. ": No such file or directory\n",
                 refused { "--api-key-file", path })
  end)

  it("the specs' helper gives the key in a file: not in the server's command line, still required", function ()
    local srv = devserver.start { api_key = KEY }
    finally(function () srv:stop() end)
    local cmdline = assert(proc.read_file("/proc/" .. srv.pid .. "/cmdline"))
    assert.matches("--api-key-file", cmdline, 1, true)
    assert.is_nil(cmdline:find(KEY, 1, true))
    assert.equal(401, post_status(srv.port))
    assert.equal(200, post_status(srv.port, { Authorization = "Bearer " .. KEY }))
    assert.is_true(srv:last().authorization_ok)
  end)
end)
