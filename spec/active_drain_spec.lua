-- Two readers of one `client:stream` must both be woken by its events, and
-- a client's `active()` must be 0 once everything ended (issue 10's
-- lifecycle contract).
--
-- The lifecycle tester found it (CI run 15, lifecycle-5.4 seed 330894
-- sequence 30, invariant active-after-drain: "every request has ended, yet
-- client 2's active() = 1"): a task of client 2 iterates a stream of
-- client 3, and while it waits for the next delta the main thread
-- iterates the same stream to its end. The iterator kept ONE "stream
-- event" future (`_next`) and each waiting reader made a new one and put
-- it there, so the main thread's future replaced the task's: the task's
-- future was never settled, the task never woke (its later calls never
-- ran), and the wait it had registered on client 3 (a guest wait, counted
-- by client 2's active()) stayed forever. Without a guest (both readers on
-- one client) the task slept for ever all the same, only invisibly; a
-- blocking reader (no task) whose future is replaced by a reader in a
-- callback waits for ever (no deadline): a hang, run here in a child
-- process under timeout(1).

local aigc = require "aigc"
local devserver = require "devserver"
local proc = require "procutil"

local STORY = { { role = "user", content = "Generate a short story about a robot that learns to paint." } }

-- The next delta read by a plain call: `for` would be a C-call boundary
-- for PUC 5.1's yield, and the task must wait by yielding on every Lua.
local function read_all (s, got)
  while true do
    local d = s()
    if d == nil then return end
    got[#got + 1] = d
  end
end

describe("two readers of one stream", function ()
  local srv
  setup(function () srv = devserver.start { pause_ms = 2 } end)
  teardown(function () if srv then srv:stop() end end)

  local clients
  before_each(function () clients = {} end)
  after_each(function ()
    for _, c in ipairs(clients) do c:close() end
  end)
  local function client (opts)
    local c = aigc.client { base_url = srv.base_url, model = "aigc-dev", max_retries = opts.retries,
                            timeout = opts.timeout }
    clients[#clients + 1] = c
    return c
  end

  -- Steps `list` until `over()` or 10 s (the old defect: never).
  local function drive (list, over)
    local deadline = aigc.now() + 10
    while not over() and aigc.now() < deadline do
      for _, c in ipairs(list) do c:step(0.01) end
    end
  end

  -- The task of `home` reads the stream of `owner` (made in the task, as the
  -- tester's nested `iterate` does) and then makes a blocking call of its
  -- own client; while the task waits, the main thread reads the same
  -- stream to its end.
  local function two_readers (home, owner)
    local s, got, task_done, call_res = nil, {}, false, nil
    home:spawn(function ()
      s = owner:stream { messages = STORY }
      read_all(s, got)
      call_res = home:chat { messages = { { role = "user", content = "Hi" } } }
      task_done = true
    end)
    assert.is_truthy(s, "the task made its stream")
    assert.is_false(task_done, "the task waits for the stream's first delta")
    for d in s:deltas() do got[#got + 1] = d end
    drive({ home, owner }, function () return task_done and home:active() == 0 and owner:active() == 0 end)
    assert.equal(0, home:active(), "the task's client counts nothing once everything ended")
    assert.equal(0, owner:active())
    assert.is_true(task_done, "the task read the stream's end and went on")
    assert.is_table(call_res, "the task's blocking call returned a result")
    -- Each delta went to exactly one reader, in order.
    local res = assert(s:result())
    assert.equal(res.choices[1].message.content, table.concat(got))
    assert.is_true(#got > 20)
  end

  it("a task of one client and the main thread (lifecycle seed 330894 seq 30): both end, active() 0",
     function ()
    local c3 = client { retries = 1, timeout = 3 }
    local c2 = client { retries = 0, timeout = 2 }
    two_readers(c2, c3)
  end)

  it("a task and the main thread on the same client: the task ends", function ()
    local c = client { retries = 0, timeout = 5 }
    two_readers(c, c)
  end)

  it("three readers (tasks of two clients and the main thread): all end, each delta read once", function ()
    local c1, c2, c3 = client { timeout = 5 }, client { timeout = 5 }, client { timeout = 5 }
    local s, got, ends = nil, {}, 0
    c1:spawn(function () s = c3:stream { messages = STORY }; read_all(s, got); ends = ends + 1 end)
    c2:spawn(function () read_all(s, got); ends = ends + 1 end)
    for d in s:deltas() do got[#got + 1] = d end
    drive({ c1, c2, c3 }, function () return ends == 2 and c1:active() + c2:active() + c3:active() == 0 end)
    assert.equal(2, ends)
    assert.same({ 0, 0, 0 }, { c1:active(), c2:active(), c3:active() })
    assert.equal(assert(s:result()).choices[1].message.content, table.concat(got))
  end)

  -- Neighbours of the same wait (they held before; kept as guards): the
  -- stream a task of another client reads ends otherwise than by its end.
  -- (the task's read raises the canceled error: reported to the client's
  -- error_handler; no pcall, which a wait cannot yield across on PUC 5.1)
  for _, how in ipairs { "close", "cancel" } do
    it("a task reading another client's stream wakes on its " .. how .. "; active() 0", function ()
      local reported = {}
      local c2 = aigc.client { base_url = srv.base_url, model = "aigc-dev", timeout = 5,
                               error_handler = function (e) reported[#reported + 1] = e end }
      clients[#clients + 1] = c2
      local c3 = client { timeout = 5 }
      local s
      local co = c2:spawn(function ()
        s = c3:stream { messages = STORY }
        read_all(s, {})
      end)
      assert.equal("suspended", coroutine.status(co), "the task waits for the first delta")
      if how == "close" then c3:close() else s:cancel() end
      drive({ c2 }, function () return coroutine.status(co) == "dead" and c2:active() == 0 end)
      assert.equal("dead", coroutine.status(co))
      assert.equal(0, c2:active())
      assert.equal("canceled", s.request:status())
      assert.equal(1, #reported)
      assert.matches("canceled", tostring(reported[1]))
    end)
  end

  -- A blocking reader, and a second reader in another request's on_done
  -- run while the first waits (the stream's first bytes are delayed so
  -- that the chat ends first). The first reader's future was replaced and
  -- it waited for ever.
  local BLOCKING = [[
local aigc = require "aigc"
local client = aigc.client { base_url = %q, model = "aigc-dev", max_retries = 0, timeout = 10 }
local STORY = { { role = "user", content = "Generate a short story about a robot that learns to paint." } }
local s = client:stream { messages = STORY, headers = { ["x-aigc-fault"] = "delay=300" } }
local got, inner, pending_then = {}, 0, nil
client:chat_async { messages = { { role = "user", content = "Hi" } }, on_done = function ()
  pending_then = s.request:status()
  for d in s do got[#got + 1] = d; inner = inner + 1 end
end }
for d in s do got[#got + 1] = d end
local res = assert(s:result())
io.write("pending then: ", tostring(pending_then), "; inner: ", inner,
         "; whole: ", tostring(table.concat(got) == res.choices[1].message.content), "\n")
client:close()
]]

  it("a blocking reader and a reader in a callback run while it waits: both end", function ()
    local cmd = "timeout -k 5 30 " .. proc.lua_command() .. " -e " .. proc.quote(BLOCKING:format(srv.base_url))
    local ok, out = proc.sh(cmd)
    assert.is_true(ok, "the blocking reader did not end within 30 s (status 124 = hang): " .. out)
    assert.matches("pending then: running; inner: %d+; whole: true", out)
  end)
end)
