-- needs: Lua 5.4 (it reads scripts/run-tests.sh's queue, a bash script's: the same under every Lua)
-- `make test`'s queue (scripts/run-tests.sh --list): every suite it ran as
-- one run per lane before the queue still runs, and every spec file in
-- exactly one part of each cell (5.4's, every other interpreter's, ASan's),
-- each C-facing one in one of valgrind's parts; the longest jobs first.
-- (CI took 59 min with fixed lanes: one lane ran valgrind-5.4 and
-- valgrind-jit whole, another asan-5.4 and asan-jit; a part lost here would
-- pass unseen, its tests never run.)
local proc = require "procutil"

local VERSIONS = { "5.4", "5.1", "5.2", "5.3", "jit" }

local function list ()
  local ok, out = proc.sh("cd " .. proc.quote(proc.root()) .. " && env AIGC_LUA_VERSIONS='5.4 5.1 5.2 5.3 jit'"
    .. " AIGC_HEAVY_VERSIONS='5.4 jit' AIGC_LIFECYCLE_EXTRA_VERSIONS=5.1 AIGC_SKIP= AIGC_VALGRIND_ALL=0"
    .. " AIGC_VALGRIND_SPLIT=1 bash scripts/run-tests.sh --list")
  assert(ok, out)
  local jobs, files = {}, {}
  for line in out:gmatch("[^\n]+") do
    local est, class, id = line:match("^job (%d+) (%a+) (%S+)$")
    if est then
      jobs[#jobs + 1] = { est = tonumber(est), class = class, id = id }
    else
      local job, path = line:match("^file (%S+) (%S+)$")
      assert(job, "a line --list should not print: " .. line)
      files[job] = files[job] or {}
      table.insert(files[job], path)
    end
  end
  return jobs, files
end

-- Every spec file, and those only Lua 5.4 runs (the header's "needs: Lua 5.4").
local function spec_files ()
  local all, only54 = {}, {}
  local p = assert(io.popen("cd " .. proc.quote(proc.root()) .. " && find spec -name '*_spec.lua' | sort"))
  for path in p:lines() do
    all[#all + 1] = path
    local f = assert(io.open(proc.root() .. "/" .. path))
    for _ = 1, 20 do
      local l = f:read("*l")
      if not l then break end
      if l:match("^%-%- *needs: *Lua 5%.4") then only54[path] = true; break end
    end
    f:close()
  end
  p:close()
  return all, only54
end

describe("make test's queue (scripts/run-tests.sh --list)", function ()
  local jobs, files, all, only54
  setup(function ()
    jobs, files = list()
    all, only54 = spec_files()
  end)

  -- The files of the parts of one run (prefix "busted-5.1-"), each once.
  local function union (prefix)
    local seen, n = {}, 0
    for _, job in ipairs(jobs) do
      if job.id:sub(1, #prefix) == prefix then
        n = n + 1
        for _, path in ipairs(files[job.id] or {}) do
          assert.is_nil(seen[path], path .. " is in two parts of " .. prefix)
          seen[path] = job.id
        end
      end
    end
    assert.equal(3, n, "parts of " .. prefix)
    return seen
  end

  it("has every suite once, the longest first", function ()
    local ids = {}
    for i, job in ipairs(jobs) do
      assert.is_nil(ids[job.id], job.id .. " twice")
      ids[job.id] = true
      if i > 1 then assert.is_true(jobs[i - 1].est >= job.est, job.id .. " after a shorter job") end
    end
    local want = { "fuzz", "host", "rockspec", "lifecycle-5.1", "lifecycle-layers-5.1" }
    for _, v in ipairs { "5.4", "jit" } do
      for _, s in ipairs { "lifecycle-", "lifecycle-layers-", "lifecycle-asan-", "soak-" } do
        want[#want + 1] = s .. v
      end
    end
    for _, id in ipairs(want) do assert.is_true(ids[id], id .. " is not in the queue") end
  end)

  it("runs fuzz and valgrind's parts as CPU-bound jobs, the rest as waiting ones", function ()
    for _, job in ipairs(jobs) do
      local cpu = job.id == "fuzz" or job.id:match("^valgrind%-") ~= nil
      assert.equal(cpu and "cpu" or "wait", job.class, job.id)
    end
  end)

  it("deals every spec file to one part of each interpreter's busted run (5.4-only ones to 5.4's)", function ()
    for _, v in ipairs(VERSIONS) do
      local seen = union("busted-" .. v .. "-")
      for _, path in ipairs(all) do
        if v == "5.4" or not only54[path] then
          assert.truthy(seen[path], path .. " in no part of busted-" .. v)
        else
          assert.is_nil(seen[path], path .. " (5.4 only) in busted-" .. v)
        end
      end
    end
  end)

  it("deals every spec file to one part of ASan's runs, as busted's", function ()
    for _, v in ipairs { "5.4", "jit" } do
      local seen, want = union("asan-" .. v .. "-"), union("busted-" .. v .. "-")
      for path in pairs(want) do assert.truthy(seen[path], path .. " in no part of asan-" .. v) end
      for path in pairs(seen) do assert.truthy(want[path], path .. " in asan-" .. v .. " only") end
    end
  end)

  it("deals each of valgrind's files to one part of one interpreter, a third each", function ()
    local s54, sjit = union("valgrind-5.4-"), union("valgrind-jit-")
    local n = 0
    for path in pairs(s54) do
      n = n + 1
      assert.is_nil(sjit[path], path .. " under valgrind twice")
    end
    for path in pairs(sjit) do
      n = n + 1
      assert.is_nil(only54[path], path .. " (5.4 only) under LuaJIT's valgrind")
    end
    -- (the C-facing files: fewer than all, more than a few; the client's own is one)
    assert.is_true(n > 50 and n < #all, "valgrind's files: " .. n)
    assert.truthy(s54["spec/client_spec.lua"] or sjit["spec/client_spec.lua"])
    for _, job in ipairs(jobs) do
      if job.id:match("^valgrind%-") then assert.is_true(#(files[job.id] or {}) > 10, job.id) end
    end
  end)

  -- (the LÖVE specs were pending in every suite for two days: they asked for
  -- a suite named busted-jit after LuaJIT's run was cut in parts)
  it("runs each LÖVE spec in the part of LuaJIT's busted run that holds it, and in no other suite", function ()
    local love_ready = require "love_ready"
    for _, spec in ipairs { "spec/love_spec.lua", "spec/love_stress_spec.lua", "spec/game_probe_spec.lua" } do
      local ran_in = {}
      for job, paths in pairs(files) do
        for _, path in ipairs(paths) do
          if path == spec then
            -- job "busted-jit-2" is the suite "busted-part2-jit" (run_busted_part's name)
            local v, k = job:match("^busted%-(.-)%-(%d+)$")
            local suite = v and ("busted-part" .. k .. "-" .. v) or job
            if love_ready.runs_in(suite) then ran_in[#ran_in + 1] = suite end
          end
        end
      end
      assert.equal(1, #ran_in, spec .. " runs in: " .. table.concat(ran_in, ", "))
      assert.matches("^busted%-part%d%-jit$", ran_in[1])
    end
  end)
end)
