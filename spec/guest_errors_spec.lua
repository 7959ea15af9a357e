-- Callback errors of a client driven as a guest (issue 10, found by the
-- lifecycle tester: seed 9201 sequence 15). A task of client B that waits
-- on client A's request makes B's loop drive A; an error raised by one of
-- A's callbacks on that occasion is A's: it goes to A's error_handler or,
-- without one, to the second result of A's next step() — never to B's
-- handler or B's step() (docs/ARCHITECTURE.md, lifecycle contract 6).
local aigc = require "aigc"
local devserver = require "devserver"

local function ask (text, fault, extra)
  local p = { messages = { { role = "user", content = "Echo: " .. text } } }
  if fault then p.headers = { ["x-aigc-fault"] = fault } end
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

-- The tags ("GUEST-ERR-...") found in a list of errors.
local function tags (errors)
  local found = {}
  for _, e in ipairs(errors or {}) do
    local tag = tostring(e):match("GUEST%-ERR%-%w+")
    if tag then found[#found + 1] = tag end
  end
  return found
end

describe("a guest client's callback errors", function ()
  local srv
  local host_seen, guest_seen   -- what each client's step() returned

  devserver.fixture(_ENV, function (s) srv = s end)

  local function drive (host, guest, done)
    local deadline = os.time() + 10
    repeat   -- (at least one host step: what it returns is checked)
      local _, errors = host:step(0.01)
      for _, t in ipairs(tags(errors)) do host_seen[#host_seen + 1] = t end
    until done() or os.time() > deadline
    assert.is_true(done())
    local _, errors = guest:step(0)
    for _, t in ipairs(tags(errors)) do guest_seen[#guest_seen + 1] = t end
  end

  before_each(function () host_seen, guest_seen = {}, {} end)

  it("driven by the host's step(): the guest's next step() returns them, the host's does not", function ()
    local host = aigc.client { base_url = srv.base_url, max_retries = 0 }
    local guest = aigc.client { base_url = srv.base_url, max_retries = 0 }
    local req = guest:chat_async(ask("g", "delay=100", {
      on_done = function () error("GUEST-ERR-done", 0) end,
    }))
    local got
    host:spawn(function () got = assert(req:wait()).text end)
    drive(host, guest, function () return got ~= nil end)
    assert.equal("g", got)
    assert.same({}, host_seen)
    assert.same({ "GUEST-ERR-done" }, guest_seen)
    host:close(); guest:close()
  end)

  it("driven by a blocking wait of the host (its stream iterator): the same", function ()
    local host = aigc.client { base_url = srv.base_url, max_retries = 0 }
    local guest = aigc.client { base_url = srv.base_url, max_retries = 0 }
    local req = guest:chat_async(ask("g", "delay=50", {
      on_done = function () error("GUEST-ERR-iter", 0) end,
    }))
    local got
    host:spawn(function () got = assert(req:wait()).text end)
    -- Outside any task the host's iterator blocks; its turns drive the
    -- guest for the task waiting there, and the guest's reply (50 ms) comes
    -- while the stream (30 ms a chunk) still runs.
    local text = {}
    for d in host:stream(ask("x", "pause=30")) do text[#text + 1] = d end
    assert.is_true(#text > 2)
    assert.equal("g", got)
    drive(host, guest, function () return got ~= nil end)
    assert.same({}, host_seen)
    assert.same({ "GUEST-ERR-iter" }, guest_seen)
    host:close(); guest:close()
  end)

  it("go to the guest's own error_handler, not the host's", function ()
    local host_handled, guest_handled = {}, {}
    local host = aigc.client { base_url = srv.base_url, max_retries = 0,
                               error_handler = function (e) host_handled[#host_handled + 1] = tostring(e) end }
    local guest = aigc.client { base_url = srv.base_url, max_retries = 0,
                                error_handler = function (e) guest_handled[#guest_handled + 1] = tostring(e) end }
    local req = guest:chat_async(ask("g", "delay=100", {
      on_done = function () error("GUEST-ERR-handled", 0) end,
    }))
    local got
    host:spawn(function () got = assert(req:wait()).text end)
    drive(host, guest, function () return got ~= nil end)
    assert.same({}, tags(host_handled))
    assert.same({ "GUEST-ERR-handled" }, tags(guest_handled))
    assert.same({}, host_seen)
    assert.same({}, guest_seen)
    host:close(); guest:close()
  end)
end)
