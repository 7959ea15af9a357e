-- Driving aigc from a luv (libuv) event loop, with no polling: aigc says
-- which sockets to watch and when its next timer is due; luv says when a
-- socket is ready or the timer fired. The same two hooks fit cqueues, a
-- game engine's poller, or any loop that can watch file descriptors.
--
--   lua5.4 examples/luv_loop.lua        (OPENAI_BASE_URL: e.g. the bundled server)
local aigc = require "aigc"
local uv = require "luv"

local client = aigc.client { model = os.getenv("AIGC_MODEL") or "gpt-4o-mini" }

local polls = {}                   -- fd -> uv poll handle
local timer = uv.new_timer()

-- act() returns what step() does: the count, and the errors callbacks
-- raised (with no error_handler, this is where they show).
local function act (fd, events)
  local _, errors = client:act(fd, events)
  for _, e in ipairs(errors or {}) do io.stderr:write("callback error: ", tostring(e), "\n") end
end

local function on_socket (fd, what)
  local poll = polls[fd]
  if what == "remove" then
    if poll then poll:stop(); poll:close(); polls[fd] = nil end
    return
  end
  if not poll then
    poll = uv.new_socket_poll(fd)
    if not poll then return end      -- (EBADF: a socket already gone; its "remove" follows)
    polls[fd] = poll
  end
  local events = (what == "in" and "r") or (what == "out" and "w") or "rw"
  poll:start(events, function (err, ready)
    act(fd, err and "e" or ready)
  end)
end

-- A one-shot timer. libuv counts from its cached clock, so it may fire a
-- little early: act() then finds nothing due and sets it again.
local function on_timer (seconds)
  timer:stop()
  if seconds then
    timer:start(math.ceil(seconds * 1000), 0, function () act() end)
  end
end

client:watch(on_socket, on_timer)

local questions = { "What is the capital of France?", "Tell me a joke", "What is 2 + 2?" }
local pending = #questions
for i, q in ipairs(questions) do
  client:chat_async {
    messages = { { role = "user", content = q } },
    on_done = function (res)
      print(("[%d] %s\n    -> %s"):format(i, q, res.text))
      pending = pending - 1
    end,
    on_error = function (err)
      print(("[%d] %s\n    -> error: %s"):format(i, q, tostring(err)))
      pending = pending - 1
    end,
  }
end
-- (no kick needed: a new request sets the timer, and from here on luv
-- wakes aigc only when needed)

-- A luv timer doing other work meanwhile, to show the loop is free.
local ticks = 0
local ticker = uv.new_timer()
ticker:start(0, 10, function () ticks = ticks + 1 end)

local check = uv.new_check()
check:start(function ()
  if pending == 0 then uv.stop() end
end)
uv.run()

-- close() first: the watcher hears "remove" for every socket still
-- watched (kept-alive connections) and on_timer(nil), before the sockets
-- close; act() on a closed client does nothing, should an event be left.
client:close()
ticker:close(); check:close(); timer:close()
uv.run("nowait")
print(("luv ran %d ticks of other work while the requests were in flight"):format(ticks))
