-- A request whose host name is still being resolved when it is dropped:
-- libcurl resolves in a thread of its own, and removing such a transfer
-- joined that thread, so req:cancel() (an NPC walking away), client:close()
-- (love.quit), lua_close and the step(0) in which its connect_timeout
-- passed waited for getaddrinfo to return: as long as a slow or
-- unreachable DNS takes to answer or give up (seconds; the frame froze).
-- They return at once now (CURLOPT_QUICK_EXIT: the resolver thread ends
-- alone). The DNS here is slow on purpose: spec/support/slowdns.c,
-- preloaded into a child, takes DNS_MS to resolve slow.aigc.test.
local luachild = require "luachild"
local proc = require "procutil"
local core = require "aigc.core"

local DNS_MS = 15000
local BOUND = 5   -- seconds: a third of the DNS's time (what the old code waited, three times over)

-- The shim, built on first use; nil and why when it cannot be.
local function shim ()
  local out = "build/slowdns/slowdns.so"
  local src = "spec/support/slowdns.c"
  local ok = proc.execute("mkdir -p build/slowdns && { test " .. out .. " -nt " .. src
                          .. " || cc -shared -fPIC -O1 -o " .. out .. " " .. src .. " -ldl; } 2>/dev/null")
  if not ok then return nil, "cc could not build " .. src end
  return proc.root() .. "/" .. out
end

local SCRIPT = [[
  local aigc = require "aigc"
  local core = require "aigc.core"
  local mark = arg[1]
  local HI = { { role = "user", content = "hi" } }
  -- Steps until the shim said `n` lookups are under way (bounded).
  local function resolving (c, n)
    local t0 = core.now()
    while core.now() - t0 < 10 do
      local f = io.open(mark, "rb")
      local text = f and f:read("*a") or ""
      if f then f:close() end
      local _, lines = text:gsub("\n", "")
      if lines >= n then return end
      c:step(0.01)
    end
    error("the lookup never started")
  end
  local c = aigc.client { base_url = "http://slow.aigc.test:9/v1", max_retries = 0, api_key = "sk-dns-cancel" }
  local seen = {}
  local r = c:chat_async { messages = HI, on_error = function (e) seen[#seen + 1] = e.kind end,
                           on_done = function () seen[#seen + 1] = "done" end }
  resolving(c, 1)
  local t0 = core.now()
  r:cancel()
  local cancel_s = core.now() - t0
  c:step(0)
  c:chat_async { messages = HI, on_error = function (e) seen[#seen + 1] = e.kind end }
  resolving(c, 2)
  t0 = core.now()
  c:close()
  local close_s = core.now() - t0
  -- one whose connect_timeout passes while it resolves: the step(0) that
  -- ends it (frame by frame, as a game's loop)
  local c3 = aigc.client { base_url = "http://slow.aigc.test:9/v1", max_retries = 0, connect_timeout = 1 }
  local r3 = c3:chat_async { messages = HI }
  local worst = 0
  repeat
    t0 = core.now()
    local n = c3:step(0)
    worst = math.max(worst, core.now() - t0)
    core.sleep(0.01)
  until n == 0
  local _, err3 = r3:result()
  -- and one the state's closing drops (lua_close at the script's end)
  local c2 = aigc.client { base_url = "http://slow.aigc.test:9/v1", max_retries = 0 }
  _G.kept = { c2, c2:chat_async { messages = HI } }
  resolving(c2, 4)
  print(string.format("cancel %.3f close %.3f %s %s step %.3f %s", cancel_s, close_s, r:status(),
                      table.concat(seen, ","), worst, err3.kind))
]]

describe("a request dropped while its host name is being resolved", function ()
  it("is canceled at once, its client closed at once, its state closed at once", function ()
    local so, why = shim()
    if not so then pending(why); return end
    local mark = os.tmpname()
    finally(function () os.remove(mark) end)
    local asan = os.getenv("ASAN_OPTIONS")
    local t0 = core.now()
    local r = luachild.run(SCRIPT, { args = { mark }, timeout = 120, env = {
      LD_PRELOAD = so, SLOWDNS_MS = tostring(DNS_MS), SLOWDNS_MARK = mark,
      -- (the ASan host links its runtime dynamically: it need not come first)
      ASAN_OPTIONS = (asan and asan ~= "" and asan .. ":" or "") .. "verify_asan_link_order=0",
    } })
    local took = core.now() - t0
    assert.equal(0, r.status, r.stderr)
    local cancel_s, close_s, status, seen, step_s, kind =
      r.stdout:match("^cancel (%S+) close (%S+) (%S+) (%S*) step (%S+) (%S+)")
    assert.truthy(cancel_s, r.stdout .. r.stderr)
    assert.is_true(tonumber(cancel_s) < BOUND, "req:cancel() took " .. cancel_s .. " s")
    assert.is_true(tonumber(close_s) < BOUND, "client:close() took " .. close_s .. " s")
    assert.equal("canceled", status)
    assert.equal("canceled,canceled", seen)   -- (each on_error once, nothing else)
    assert.is_true(tonumber(step_s) < BOUND, "the step(0) that timed the lookup out took " .. step_s .. " s")
    assert.equal("timeout", kind)
    assert.is_true(took < BOUND * 2, "the child took " .. took .. " s (its lua_close waited for the DNS?)")
  end)
end)
