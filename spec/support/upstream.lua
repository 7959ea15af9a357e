--- Upstream servers behind the cassette's recording proxy, for the
-- cassette specs (cassette_spec, cassette_secrets, cassette_upstream): a
-- lua5.4 child with luv (which the proxy needs anyway) that reads each
-- request whole, then runs the answer the spec gives. Plain text in a
-- child of its own, so that its timing is its own (an answer that closes
-- the connection late, an address family the host may lack).
--
-- @usage
-- local up = upstream.start(dir .. "/echo.lua", 'reply(s, "hello")')
-- ... "http://127.0.0.1:" .. up.port .. "/v1" ...; up.stop()

local cli = require "cli"

local M = {}

-- The child: HOST, ANSWER and LIFETIME are filled in. Once a request is
-- whole, ANSWER runs with `s` (the connection), `buf` (the request) and
-- `h` (where its head ends); `reply(s, content)` answers a chat completion
-- holding `content` and closes.
local SCRIPT = [=[
local uv = require "luv"
local function reply (s, content)
  local body = '{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
    .. '"message":{"role":"assistant","content":"' .. content .. '"},"finish_reason":"stop"}]}'
  s:write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body
          .. "\r\nConnection: close\r\n\r\n" .. body, function () s:shutdown(function () s:close() end) end)
end
local srv = uv.new_tcp()
if srv:bind(HOST, 0) ~= 0 then print("none") os.exit(0) end
srv:listen(8, function ()
  local s = uv.new_tcp()
  srv:accept(s)
  local buf = ""
  s:read_start(function (_, d)
    if not d then return end
    buf = buf .. d
    local h = buf:find("\r\n\r\n", 1, true)
    if not h or #buf < h + 3 + (tonumber(buf:match("[Cc]ontent%-[Ll]ength:%s*(%d+)")) or 0) then return end
    s:read_stop()
    ANSWER
  end)
end)
io.stdout:write(srv:getsockname().port, " ", uv.os_getpid(), "\n")
io.stdout:flush()
uv.new_timer():start(LIFETIME, 0, function () os.exit(0) end)
uv.run()
]=]

--- Starts an upstream from the script written at `path`.
-- @tparam string path where to write the child's script
-- @tparam string answer Lua code run for each whole request (see SCRIPT above)
-- @tparam[opt] table opts `host` ("127.0.0.1"; "::1" for IPv6), `lifetime`
-- (ms the child lives at most: 60000)
-- @treturn table `port`, `pid`, `stop()` (kills the child, removes the
-- script); nil when the host has no such address (IPv6)
function M.start (path, answer, opts)
  opts = opts or {}
  local text = SCRIPT:gsub("HOST", ("%q"):format(opts.host or "127.0.0.1"))
    :gsub("LIFETIME", tostring(opts.lifetime or 60000))
    :gsub("    ANSWER\n", function () return answer end)
  cli.write(path, text)
  local up = io.popen("exec lua5.4 " .. path)
  local line = up:read("*l")
  if line == "none" then
    up:close()
    os.remove(path)
    return nil
  end
  local port, pid = assert(line, "the upstream printed nothing"):match("^(%d+) (%d+)$")
  return { port = port, pid = pid, stop = function ()
    os.execute("kill " .. pid)
    up:close()
    os.remove(path)
  end }
end

--- One chat call recorded through the cassette's recording proxy in front
-- of an upstream answering with `answer`, in a folder of its own (removed
-- at the test's end): what the call gave and the tape's bytes.
-- @tparam string answer as for `start`
-- @tparam table client_opts the client's options (base_url, cassette: set here)
-- @tparam table params the chat call's
-- @tparam function finally the spec's `finally`
-- @return the call's result (or nil), its error, and the tape's bytes
function M.recorded (answer, client_opts, params, finally)
  local dir = cli.home()
  finally(function () cli.rmdir(dir) end)
  local up = M.start(dir .. "/upstream.lua", answer)
  finally(function () up.stop() end)
  client_opts.base_url = "http://127.0.0.1:" .. up.port .. "/v1"
  client_opts.cassette = { path = dir .. "/tape.jsonl", mode = "record", proxy = true }
  local aigc = require "aigc"
  local c = aigc.client(client_opts)
  local res, err = c:chat(params)
  c:close()
  return res, err, cli.read(dir .. "/tape.jsonl")
end

return M
