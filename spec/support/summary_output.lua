-- A busted output handler for `make test`: one line per test as it ends,
-- failures in full, and a last line "busted <suite>: N passed, N failed, N skipped"
-- that scripts/run-tests.sh adds to the closing total. Errors outside an
-- `it` (a failing setup or describe) count as failures: they hide tests.
--   busted --lua=lua5.4 -o spec/support/summary_output.lua
-- With AIGC_BUSTED_TRACE=FILE (scripts/run-tests.sh sets it), FILE gets the
-- process's pid, then every spec file and test as it STARTS (after an "at
-- SECONDS" line), flushed: a
-- busted that dies (a crash, a signal) before its summary leaves behind what
-- it was running, for run-tests.sh's report of the death.
local io_write, string_format = io.write, string.format

local function own_pid ()
  local stat = io.open("/proc/self/stat")   -- Linux; "?" elsewhere
  local pid = stat and (stat:read("*l") or ""):match("^%d+")
  if stat then stat:close() end
  return pid or "?"
end

local function trace_starts (busted, handler)
  local path = os.getenv("AIGC_BUSTED_TRACE")
  local trace = path and path ~= "" and io.open(path, "w")
  if not trace then return end
  local function line (...)
    trace:write(...)
    trace:write("\n")
    trace:flush()
  end
  -- Each start is preceded by "at S" (seconds since the suite began), so a
  -- cell that took long tells which file and test did (CI run 19: busted-5.3
  -- took 724 s where it takes 265, and nothing said where).
  local ok, socket = pcall(require, "socket")
  local clock = ok and socket.gettime or os.time
  local t0 = clock()
  local function at () line(string_format("at %.1f", clock() - t0)) end
  line("pid ", own_pid())
  busted.subscribe({ "file", "start" }, function (file)
    at()
    line("file ", tostring(file.name))
    return nil, true
  end)
  busted.subscribe({ "test", "start" }, function (element)
    at()
    line("test ", handler.getFullName(element))
    return nil, true
  end)
  busted.subscribe({ "suite", "end" }, function ()
    line("end")
    return nil, true
  end)
end

return function (options)
  local busted = require "busted"
  local handler = require("busted.outputHandlers.base")()
  local suite = os.getenv("AIGC_SUITE_NAME") or "lua"
  local passed, failed, skipped = 0, 0, 0
  local failures = {}

  local function describe_failure (t)
    local message = t.message
    if type(message) ~= "string" then
      message = message == nil and "nil error" or require("pl.pretty").write(message)
    end
    local where = t.trace and t.trace.short_src and
                  (t.trace.short_src .. ":" .. tostring(t.trace.currentline)) or "?"
    local text = string_format("FAIL %s\n  at %s\n  %s\n", t.name, where, message:gsub("\n", "\n  "))
    if t.trace and t.trace.traceback and options.verbose then
      text = text .. "  " .. t.trace.traceback:gsub("\n", "\n  ") .. "\n"
    end
    return text
  end

  handler.testEnd = function (element, _, status)
    local name = handler.getFullName(element)
    if status == "success" then
      passed = passed + 1
      io_write("  ok   ", name, "\n")
    elseif status == "pending" then
      skipped = skipped + 1
      local t = handler.pendings[#handler.pendings]
      io_write("  skip ", name, (t and t.message) and (" (" .. tostring(t.message) .. ")") or "", "\n")
    else
      failed = failed + 1
      local list = status == "failure" and handler.failures or handler.errors
      local t = list[#list]
      local text = describe_failure(t)
      failures[#failures + 1] = text
      io_write(text)
    end
    io.flush()
    return nil, true
  end

  handler.error = function (element)
    if element.descriptor ~= "it" then
      failed = failed + 1
      local t = handler.errors[#handler.errors]
      local text = describe_failure(t)
      failures[#failures + 1] = text
      io_write(text)
      io.flush()
    end
    return nil, true
  end

  handler.suiteEnd = function ()
    if #failures > 0 then
      io_write("\nFailures:\n", table.concat(failures))
    end
    io_write(string_format("busted %s: %d passed, %d failed, %d skipped\n", suite, passed, failed, skipped))
    io.flush()
    return nil, true
  end

  busted.subscribe({ "test", "end" }, handler.testEnd, { predicate = handler.cancelOnPending })
  busted.subscribe({ "error" }, handler.error)
  busted.subscribe({ "failure" }, handler.error)
  busted.subscribe({ "suite", "end" }, handler.suiteEnd)
  trace_starts(busted, handler)
  return handler
end
