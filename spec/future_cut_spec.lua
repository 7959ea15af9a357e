-- A future's end (the Lua layer's requests: a say_async, a chat_async with
-- a toolset, the media calls) survives a host's watchdog hook that cuts the
-- turn delivering it at any instruction, as a C request's does (end_cut_spec):
-- the interrupt reaches step()'s caller as it is, exactly one of on_done /
-- on_error runs by the next step (a cut inside it counts: it ran), a task
-- waiting on the future wakes, and the client goes on.
--
-- Cut at every instruction of that turn, the end went wrong: run_end took
-- the callbacks off the future and then spawned their task, so a cut in
-- between ran neither; a cut while the waiters were run left a waiting task
-- asleep for ever; and most cuts were swallowed by step() -- the loop ran
-- its deliveries and the tasks' resumes under plain pcalls, and the
-- watchdog became a reported callback error while the script ran on.

local sweep = require "future_sweep"

describe("a future's end cut by a watchdog hook", function ()
  local srv, surfaces
  setup(function () srv, surfaces = sweep.start() end)
  teardown(function () srv:stop() end)
  before_each(sweep.jit_off)
  after_each(sweep.unhook)

  local function each_cut (start)
    local bad, n, after, left = sweep.each_cut(srv, start, true)
    -- (the client goes on: a call after the sweep)
    assert.truthy(after)
    assert.equal(0, left)
    assert.is_true(n > 20)
    assert.same({}, bad)
  end

  for _, name in ipairs { "say_async", "chat_async_toolset", "images_generate_async", "embeddings_async",
                          "download_async" } do
    it(name .. ": the watchdog reaches step()'s caller, one on_done, the task wakes, cut at every point", function ()
      each_cut(surfaces[name])
    end)
  end
end)
