-- `aigc run --batch` whose cases go as several batches (the Batch API's
-- limits), stopped by Ctrl-C without --out: the run named only its last
-- batch, and a rerun with it failed the other batches' cases "without this
-- case" (those of the batches after it never sent). It names every batch
-- of the run now, and a rerun with them resumes each, in order.

local cjson = require "cjson"
local cli = require "cli"
local devserver = require "devserver"
local proc = require "procutil"
local socket = require "socket"

-- The batches the server was asked to create and to show, in order, from request `from` on.
local function batches (srv, from)
  local created, polled, seen = 0, {}, {}
  for i, r in ipairs(srv:requests()) do
    if i > (from or 0) then
      if r.method == "POST" and r.path == "/v1/batches" then created = created + 1 end
      local id = r.method == "GET" and r.path:match("^/v1/batches/([^/]+)$")
      if id and not seen[id] then seen[id], polled[#polled + 1] = true, id end
    end
  end
  return created, polled
end

describe("aigc run --batch over several batches, stopped by Ctrl-C without --out", function ()
  it("names every batch; a rerun with them takes each batch's results, sends the rest, redoes none", function ()
    -- (300 ms a line: the second batch of two lines is still running when the run is stopped)
    local srv = devserver.start { batch_delay_ms = 300 }
    finally(function () srv:stop() end)
    local home = cli.home()
    finally(function () cli.rmdir(home) end)
    -- (the API's limit of requests per batch, lowered to 2 in the command's own process: five cases, three batches)
    local init = home .. "/limit.lua"
    cli.write(init, [[
local require0 = require
function require (name)
  local m = require0(name)
  if name == "aigc.batch" then m.MAX_REQUESTS = 2 end
  return m
end
]])
    local lines = {}
    for i = 1, 5 do lines[i] = ('{"id":"c%d","messages":[{"role":"user","content":"Echo: case %d"}]}'):format(i, i) end
    cli.write(home .. "/cases.jsonl", table.concat(lines, "\n") .. "\n")
    local env = { LUA_INIT = "@" .. init, AIGC_NO_LOG = "1" }
    local args = { "run", home .. "/cases.jsonl", "--batch", "-q", "-m", "aigc-dev" }
    local job = cli.background(args, { home = home, base_url = srv.base_url, stderr = home .. "/err", env = env })
    local deadline = socket.gettime() + 30
    while #select(2, batches(srv)) < 2 do   -- (until the second batch is polled)
      assert(socket.gettime() < deadline, "the run never polled a second batch")
      socket.sleep(0.02)
    end
    os.execute("kill -INT " .. job.pid)
    assert.equal(130, job.wait_exit(deadline))
    local created, polled = batches(srv)
    assert.equal(2, created)
    local said = proc.read_file(home .. "/err")
    assert.equal("aigc run: interrupted: batch " .. polled[2] .. " goes on at the server (run it again with --batch-id "
                 .. polled[1] .. "," .. polled[2] .. " to take the results; --batch --cancel --batch-id " .. polled[2]
                 .. " cancels it)\n", said)
    -- The rerun, as said (with --out to read each case's result).
    local from = #srv:requests()
    args[#args + 1] = "--batch-id"
    args[#args + 1] = said:match("%-%-batch%-id (%S+) to take")
    args[#args + 1] = "--out"
    args[#args + 1] = home .. "/out.jsonl"
    local r = cli.run(args, { home = home, base_url = srv.base_url, env = env })
    assert.equal(0, r.code, r.stderr)
    local by = {}
    for line in proc.read_file(home .. "/out.jsonl"):gmatch("[^\n]+") do
      local res = cjson.decode(line)
      assert.is_true(res.pass, line)
      assert.equal("case " .. res.id:sub(2), res.text)
      by[res.id] = res.batch_id
    end
    assert.equal(polled[1], by.c1)   -- (the first batch's results, taken: not sent again)
    assert.equal(polled[1], by.c2)
    assert.equal(polled[2], by.c3)   -- (the stopped batch's)
    assert.equal(polled[2], by.c4)
    local again, ids = batches(srv, from)
    assert.equal(1, again)            -- (one new batch: the case no batch had)
    assert.equal(3, #ids)
    assert.equal(ids[3], by.c5)
    assert.is_nil(({ [polled[1]] = true, [polled[2]] = true })[by.c5])
    local body = devserver.http("GET", srv.base_url .. "/batches/" .. ids[3])
    local file = devserver.http("GET", srv.base_url .. "/files/" .. cjson.decode(body).input_file_id .. "/content")
    local sent = {}
    for line in file:gmatch("[^\n]+") do sent[#sent + 1] = cjson.decode(line).custom_id end
    assert.same({ "c5" }, sent)
  end)
end)
