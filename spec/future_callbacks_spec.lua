-- A future's on_done/on_error (the `_async` media, files and embeddings
-- calls; a dialogue's, a say's) runs as a task of its client: a blocking
-- call there yields that task. `f:wait()` returned as soon as it yielded,
-- so code after the wait ran before on_done's end (the texture on_done was
-- to make from an image was not there yet), unlike a request's wait
-- (`chat_async`), which returns after its on_done. Now a wait -- blocking,
-- or in a task -- returns after that callback's end, whatever it did.
local aigc = require "aigc"
local devserver = require "devserver"
local luachild = require "luachild"

local HI = { { role = "user", content = "Hi" } }

describe("a future's wait and its on_done", function ()
  local srv, client, dir
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })
  setup(function ()
    local p = io.popen("mktemp -d /tmp/aigc-futcb-XXXXXX")
    dir = p:read("*l")
    p:close()
  end)
  teardown(function () os.execute("rm -rf '" .. dir .. "'") end)

  -- Each call, with its callbacks in `cbs` (on_done / on_error).
  local CALLS = {
    { "embeddings_async", function (c, cbs)
      return c:embeddings_async { input = "x", model = "text-embedding-3-small",
                                  on_done = cbs.on_done, on_error = cbs.on_error } end },
    { "moderate_async", function (c, cbs)
      return c:moderate_async { input = "x", on_done = cbs.on_done, on_error = cbs.on_error } end },
    { "images_generate_async", function (c, cbs)
      return c:images_generate_async { prompt = "x", size = "16x16", response_format = "b64_json",
                                       on_done = cbs.on_done, on_error = cbs.on_error } end },
    { "speech_async", function (c, cbs)
      return c:speech_async { input = "x", on_done = cbs.on_done, on_error = cbs.on_error } end },
    { "files_upload_async", function (c, cbs)
      return c:files_upload_async { file = { data = "{}\n", filename = "a.jsonl" }, purpose = "batch",
                                    on_done = cbs.on_done, on_error = cbs.on_error } end },
    { "download_async", function (c, cbs)
      return c:download_async(srv.base_url .. "/models", { on_done = cbs.on_done, on_error = cbs.on_error }) end },
  }

  -- Callbacks that make a blocking call, logging their start and end.
  local function logging (c, log)
    local function cb (name)
      return function (v)
        log[#log + 1] = name .. " start"
        assert(c:chat { messages = HI })   -- (a blocking call: it yields the callback's task)
        log[#log + 1] = name .. " end"
        return v
      end
    end
    return { on_done = cb("on_done"), on_error = cb("on_error") }
  end

  for _, case in ipairs(CALLS) do
    local name, call = case[1], case[2]

    it(name .. ": a blocking wait returns after on_done ended, a blocking call in it included", function ()
      local log = {}
      local f = call(client, logging(client, log))
      local res, err = f:wait()
      log[#log + 1] = "wait returned"
      assert.is_table(res, tostring(err))
      assert.same({ "on_done start", "on_done end", "wait returned" }, log)
    end)

    it(name .. ": a task's wait too", function ()
      local log, got = {}, nil
      client:spawn(function ()
        local f = call(client, logging(client, log))
        got = { f:wait() }
        log[#log + 1] = "wait returned"
      end)
      while client:step(0.05) > 0 do end
      assert.is_table(got, "the task never woke")
      assert.is_table(got[1], tostring(got[2]))
      assert.same({ "on_done start", "on_done end", "wait returned" }, log)
    end)
  end

  it("on_error too, for a call that failed", function ()
    local log = {}
    local cbs = logging(client, log)
    local f = client:embeddings_async { input = "x", headers = { ["x-aigc-fault"] = "status=400" },
                                        on_done = cbs.on_done, on_error = cbs.on_error }
    local res, err = f:wait()
    log[#log + 1] = "wait returned"
    assert.is_nil(res)
    assert.equal("http", err.kind)
    assert.same({ "on_error start", "on_error end", "wait returned" }, log)
  end)

  it("a wait inside its own on_done returns at once, with the result", function ()
    local f, inner
    f = client:moderate_async { input = "x", on_done = function ()
      assert(client:chat { messages = HI })
      inner = { f:wait() }
    end }
    local res = assert(f:wait())
    assert.is_table(inner, "on_done had not ended when wait returned")
    assert.equal(res, inner[1])
  end)

  it("two on_done waiting for each other's future both end", function ()
    local a, b
    local log = {}
    local function waits_for (name, other)
      return function ()
        assert(client:chat { messages = HI })
        local res = other():wait()
        log[#log + 1] = name .. (res and " saw it" or " saw nothing")
      end
    end
    local model = "text-embedding-3-small"
    a = client:embeddings_async { input = "a", model = model, on_done = waits_for("a", function () return b end) }
    b = client:embeddings_async { input = "b", model = model, on_done = waits_for("b", function () return a end) }
    assert(a:wait())
    assert(b:wait())
    table.sort(log)
    assert.same({ "a saw it", "b saw it" }, log)
  end)

  it("an on_done that raises after its blocking call: the wait returns, the error is reported once", function ()
    local reported = {}
    local c = aigc.client { base_url = srv.base_url, max_retries = 0,
                            error_handler = function (e) reported[#reported + 1] = e end }
    local ended = false
    local f = c:moderate_async { input = "x", on_done = function ()
      assert(c:chat { messages = HI })
      ended = true
      error("texture upload failed")
    end }
    assert(f:wait())
    assert.is_true(ended)
    while c:step(0.01) > 0 do end
    assert.equal(1, #reported)
    assert.matches("texture upload failed", tostring(reported[1].message))
    c:close()
  end)

  it("finalizers that cancel at each point of the call or its on_done's blocking call: one end", function ()
    -- (5.4: its collector can be made to step at every few bytes allocated,
    -- so finalizers run everywhere. In a child: on the heap the earlier
    -- specs leave (100 MB and more in the whole suite) no cycle ends while
    -- a call runs, whatever the step, and no finalizer ran at all.)
    if _VERSION ~= "Lua 5.4" then
      pending("needs Lua 5.4: a collector that can be made to step every few bytes allocated")
      return
    end
    local r = luachild.run([=[
      local aigc = require "aigc"
      local base_url, dir = ...
      local HI = { { role = "user", content = "Hi" } }
      local client = aigc.client { base_url = base_url, api_key = "sk-test", model = "aigc-dev" }
      local res = assert(client:images_generate { prompt = "x", size = "16x16", n = 2 })
      local calls = {
        function (cb) return client:embeddings_async { input = { "a", "b" }, model = "text-embedding-3-small",
                                                       on_done = cb.on_done, on_error = cb.on_error } end,
        function (cb) return res:save_async(dir .. "/fin-%d.png", cb) end,
      }
      local canceled, done = 0, 0
      for n, call in ipairs(calls) do
        for _, k in ipairs { 1, 2, 3, 5, 8, 12, 17, 23, 30, 40, 55, 75, 100, 150, math.huge } do
          -- Garbage whose finalizer makes more while the call runs; the k-th
          -- one run after the call returned cancels it.
          local f, ends, seen, live = nil, 0, 0, true
          local function arm ()
            setmetatable({}, { __gc = function ()
              if f then
                seen = seen + 1
                if seen == k then f:cancel("gc") end
              end
              if live then arm() end
            end })
          end
          collectgarbage("setpause", 0)
          collectgarbage("incremental", 0, 400, 1)   -- (0: unchanged; steps every 2 bytes)
          collectgarbage()
          for _ = 1, 4 do arm() end
          f = call { on_done = function ()
            assert(client:chat { messages = HI })
            ends = ends + 1
          end, on_error = function () ends = ends + 1 end }
          f:wait()
          live = false
          collectgarbage("incremental", 200, 100, 13)   -- (5.4's defaults)
          local where = "call " .. n .. ", finalizer " .. k
          assert(ends == 1, where .. ": " .. ends .. " ends")   -- (the wait returned after the one callback's end)
          assert(f:status() == "done" or f:status() == "canceled", where .. ": " .. f:status())
          if f:status() == "canceled" then canceled = canceled + 1 else done = done + 1 end
          while client:step(0.01) > 0 do end
        end
      end
      assert(client:moderate { input = "still fine" })
      print("canceled " .. canceled .. " done " .. done)
    ]=], { args = { srv.base_url, dir } })
    assert.equal(0, r.status, r.stderr)
    local canceled, done = r.stdout:match("canceled (%d+) done (%d+)")
    assert.is_truthy(canceled, r.stdout)
    assert.is_true(tonumber(canceled) > 0, "no finalizer canceled anything: the case tested nothing")
    -- (k huge: none cancels)
    assert.is_true(tonumber(done) > 0, "every call was canceled: no on_done ran its blocking call")
  end)

  it("a say_async's on_done as well (the same futures)", function ()
    local log = {}
    local conv = aigc.conversation { client = client }
    local f = conv:say_async("Hello", { on_done = logging(client, log).on_done })
    assert(f:wait())
    log[#log + 1] = "wait returned"
    assert.same({ "on_done start", "on_done end", "wait returned" }, log)
  end)

  it("a file written by on_done is there when wait returns", function ()
    local path = dir .. "/img-1.png"
    local f = client:images_generate_async { prompt = "x", size = "16x16", response_format = "b64_json",
      on_done = function (res)
        assert(client:chat { messages = HI })
        assert(res:save(dir .. "/img-%d.png"))
      end }
    assert(f:wait())
    local fh = io.open(path, "rb")
    assert.is_truthy(fh, "on_done's file was not written yet when wait returned")
    assert.equal("\137PNG", fh:read(4))
    fh:close()
  end)
end)
