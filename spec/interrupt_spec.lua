-- Ctrl-C interrupts a blocking call (issue 10 item 4, defect 10): the
-- standalone interpreter's SIGINT handler installs a debug hook that raises
-- "interrupted!"; aigc must wake up for it (within its 0.1 s wait slices,
-- at once on EINTR), cancel the request it waited for, and let the error
-- propagate like from any Lua code — not after timeout x attempts, not as
-- a returned "callback" error. A real interpreter process (lua5.4, or the
-- sanitizer host, which handles SIGINT the same way) gets a real SIGINT
-- while it waits on a server that hangs or drips.
local devserver = require "devserver"
local luachild = require "luachild"
local socket = require "socket"

-- arg[1] the server, arg[2] what to wait on. The script catches the
-- interrupt with pcall only to report what it found; uncaught it would end
-- the interpreter (the last case shows that too).
local CHILD = [[
local aigc = require "aigc"
local c = aigc.client { base_url = arg[1], max_retries = 2 }
local mode = arg[2]
local p = { messages = { { role = "user", content = "Hi" } } }
local function fault (f) p.headers = { ["x-aigc-fault"] = f } end
local req
local call
if mode == "blocking" then
  fault "hang"
  call = function () return c:chat(p) end
elseif mode == "wait" then
  fault "hang"
  req = c:chat_async(p)
  call = function () return req:wait() end
elseif mode == "stream" then
  fault "comment-drip=50"
  p.stream = function () end
  call = function () return c:chat(p) end
elseif mode == "callback" then
  fault "pause=10"
  p.messages[1].content = "Tell me a story about a robot that learns to paint"
  -- The first delta's callback works (Lua code) for up to 10 s of CPU, so
  -- that the signal comes inside it whatever the reply's length and the
  -- VM's speed. LuaJIT: interpreted (hooks run in the interpreter, not in
  -- compiled code).
  local worked = false
  p.stream = function ()
    if worked then return end
    worked = true
    io.write("IN-CALLBACK\n"); io.flush()
    local stop, x = os.clock() + 10, 0
    while os.clock() < stop do for i = 1, 1e4 do x = x + i end end
  end
  if rawget(_G, "jit") then jit.off(p.stream) end
  call = function () return c:chat(p) end
elseif mode == "step" then
  fault "hang"
  req = c:chat_async(p)
  call = function () while true do c:step(5) end end
elseif mode == "uncaught" then
  fault "hang"
  io.write("READY\n"); io.flush()
  c:chat(p)
  print("RETURNED")
  return
end
io.write("READY\n"); io.flush()
local ok, err, err2 = pcall(call)
print("RESULT", ok, tostring(err):match("interrupted!") and "interrupted!" or tostring(err))
-- (a call that returned nil, err instead: what it returned, for the failure message)
if ok and err == nil then print("RETURNED-ERROR", tostring(err2)) end
print("ACTIVE", c:active(), req and req:status() or "-")
-- The client is still usable after the interrupt.
p.headers, p.stream = nil, nil
local res = c:chat(p)
print("AFTER", res ~= nil)
]]

local function now () return socket.gettime() end

describe("Ctrl-C during a blocking call", function ()
  local srv

  setup(function () srv = devserver.start() end)
  teardown(function () srv:stop() end)

  -- Starts the child, waits until it waits, sends SIGINT; returns the
  -- child's result. Inside the wait: the server has the request (chat_async
  -- only queues it: the call that waits sends it), or the child said it is
  -- inside the stream callback. The bounds only guard against a hang.
  local function interrupt (mode)
    local before = srv:stats().requests_total
    local child = luachild.run(CHILD, { args = { srv.base_url, mode }, background = true })
    assert.truthy(child.pid, "the child did not start")
    child:until_printed("READY", 60)
    if mode == "callback" then
      child:until_printed("IN-CALLBACK", 60)
    else
      local deadline = now() + 60
      while srv:stats().requests_total == before do
        assert.truthy(now() < deadline, "the server never had the child's request")
        socket.sleep(0.01)
      end
    end
    os.execute("kill -INT " .. child.pid)
    -- before the fix: killed here (status 124), the hung request's timeout being 600 s
    return child:wait(120)
  end

  for _, mode in ipairs { "blocking", "wait", "stream", "callback", "step" } do
    it(("interrupts %s, cancels what it waited for, leaves the client usable"):format(mode), function ()
      local r = interrupt(mode)
      assert.equal(0, r.status, r.stderr .. r.stdout)
      assert.matches("RESULT\tfalse\tinterrupted!\n", r.stdout, 1, true)
      -- A call waiting for its request cancels it; step() waits for no
      -- request in particular: the frame loop's requests go on.
      local active = mode == "step" and "ACTIVE\t1\trunning\n"
        or "ACTIVE\t0\t" .. (mode == "wait" and "canceled" or "-") .. "\n"
      assert.matches(active, r.stdout, 1, true)
      assert.matches("AFTER\ttrue\n", r.stdout, 1, true)
    end)
  end

  it("uncaught, ends the interpreter with its usual message", function ()
    local r = interrupt("uncaught")
    assert.equal(1, r.status, r.stderr)
    assert.matches("interrupted!", r.stderr)
    assert.not_matches("RETURNED", r.stdout)
  end)
end)
