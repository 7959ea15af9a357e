-- The dataset runner and the Batch API at scale: a run of thousands of
-- cases admits each in O(1), a cases file as editors write it (a BOM,
-- CRLF) reads, a duplicate id names its lines, and a batch past the Batch
-- API's limits is refused before anything is uploaded.

local aigc = require "aigc"
local batch = require "aigc.batch"
local cli = require "cli"
local devserver = require "devserver"

-- A client no request ever reaches (nothing listens on port 9): what a
-- test sees from it was decided before the network.
local function offline ()
  return aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev", api_key = "sk-scale-0", timeout = 5,
                       max_retries = 0 }
end

describe("scale", function ()
  local dir
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  it("a run of 3,000 cases does not shift its queue for each case it admits", function ()
    -- The runner as loaded with a table.remove that counts the elements it
    -- moves (the runner keeps its own reference, taken when it loads).
    local saved_remove, saved_runner = table.remove, package.loaded["aigc.runner"]
    local moved = 0
    table.remove = function (t, pos)   -- luacheck: ignore 122
      if pos then moved = moved + (#t - pos) end
      return saved_remove(t, pos)
    end
    package.loaded["aigc.runner"] = nil
    local ok, runner = pcall(require, "aigc.runner")
    table.remove = saved_remove        -- luacheck: ignore 122
    package.loaded["aigc.runner"] = saved_runner
    assert(ok, runner)
    local N, cases = 3000, {}
    for i = 1, N do cases[i] = { id = "c" .. i, prompt = "Echo: " .. i } end
    local client = offline()
    finally(function () client:close() end)
    local seen = {}
    local summary = assert(runner.run { client = client, cases = cases, concurrency = 8, pace = false,
      strategy = function (_, params) return { text = params.messages[1].content:sub(7) } end,
      on_result = function (r) seen[#seen + 1] = r.id .. "=" .. r.text end })
    assert.equal(N, summary.ok)
    assert.equal(N, #seen)
    table.sort(seen)
    local want = {}
    for i = 1, N do want[i] = "c" .. i .. "=" .. i end
    table.sort(want)
    assert.same(want, seen)       -- every case once, its own reply
    -- Shifting the queue at each admission moved N^2/2 = 4,500,000 elements.
    assert.is_true(moved < N, "table.remove moved " .. moved .. " elements")
  end)

  it("a cases file with a UTF-8 BOM and CRLF line ends reads; a bad line is named by its number", function ()
    local path = dir .. "/cases.jsonl"
    cli.write(path, "\239\187\191" .. '{"id":"a","prompt":"x"}\r\n\r\n{"id":"b","prompt":"y"}\r\n')
    local cases, lines = aigc.runner.read_cases(path)
    assert.is_table(cases, tostring(lines))
    assert.equal(2, #cases)
    assert.equal("a", cases[1].id)
    assert.equal("b", cases[2].id)
    assert.same({ 1, 3 }, lines)
    cli.write(path, '{"id":"a","prompt":"x"}\n{"id":"b","prompt":"' .. string.char(255) .. '"}\n')
    local none, err = aigc.runner.read_cases(path)
    assert.is_nil(none)
    assert.matches("cases%.jsonl:2: not a JSON object", err.message)
  end)

  it("two cases of a file with one id: the error names both lines", function ()
    local path = dir .. "/cases.jsonl"
    cli.write(path, '{"id":"a","prompt":"x"}\n\n{"id":"b","prompt":"y"}\n{"id":"a","prompt":"z"}\n')
    local client = offline()
    finally(function () client:close() end)
    local summary, err = aigc.runner.run { client = client, cases = path }
    assert.is_nil(summary)
    assert.equal("input", err.code)
    assert.equal(path .. ":4: two cases have the id a (lines 1 and 4): ids must be unique", err.message)
  end)

  describe("a batch past the Batch API's limits is refused before the upload", function ()
    local function requests (n)
      local list = {}
      for i = 1, n do
        list[i] = { custom_id = "r" .. i, body = { messages = { { role = "user", content = "hi" } } } }
      end
      return list
    end

    it("more than 50,000 requests", function ()
      assert.equal(50000, batch.MAX_REQUESTS)
      local client = offline()
      finally(function () client:close() end)
      local b, err = batch.create(client, requests(50001))
      assert.is_nil(b)
      assert.equal("batch", err.kind)     -- (not "connect": nothing was sent)
      assert.equal("too_many_requests", err.code)
      assert.matches("50001 requests: a batch takes at most 50000", err.message)
    end)

    it("an input file past MAX_BYTES (200 MB)", function ()
      assert.equal(200 * 1000 * 1000, batch.MAX_BYTES)
      local client = offline()
      local saved = batch.MAX_BYTES
      finally(function () batch.MAX_BYTES = saved; client:close() end)
      batch.MAX_BYTES = 1000
      local b, err = batch.create(client, requests(20))
      assert.is_nil(b)
      assert.equal("batch", err.kind)
      assert.equal("too_large", err.code)
      assert.matches("input file would be %d+ bytes: a batch takes at most 1000", err.message)
    end)
  end)

  it("a batch's output and error files are read as they stream in, every line mapped to its custom_id", function ()
    local srv = devserver.start { pause_ms = 0, batch_delay_ms = 1 }
    local client = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = "sk-scale-1" }
    finally(function () client:close(); srv:stop() end)
    local given = {}   -- what each download was asked to write to
    local files_content = client.files_content
    client.files_content = function (self, id, opts)
      given[#given + 1] = type(opts and opts.to)
      return files_content(self, id, opts)
    end
    local N, reqs = 200, {}
    for i = 1, N do   -- (every 7th line fails: the error file)
      reqs[i] = { custom_id = "q" .. i, body = { model = i % 7 == 0 and "fault:status=500" or "aigc-dev",
                  messages = { { role = "user", content = "Echo: " .. i .. string.rep(" pad", 40) } } } }
    end
    local results, b = batch.run(client, reqs, { interval = 0.05 })
    assert.is_table(results, tostring(b))
    assert.same({ "function", "function" }, given)   -- the output file and the error file, streamed
    local n = 0
    for _ in pairs(results) do n = n + 1 end
    assert.equal(N, n)
    for i = 1, N do
      local r = results["q" .. i]
      if i % 7 == 0 then
        assert.is_false(r.ok, i)
        assert.equal(500, r.status_code)
      else
        assert.is_true(r.ok, i)
        assert.matches("^" .. i .. " pad", r.body.choices[1].message.content)
      end
    end
  end)

  it("a batch run of cases whose ids print alike (0.1 and \"0.1\"): each gets its own reply", function ()
    local srv = devserver.start { pause_ms = 0, batch_delay_ms = 1 }
    local client = aigc.client { base_url = srv.base_url, model = "aigc-dev", api_key = "sk-scale-2" }
    finally(function () client:close(); srv:stop() end)
    local ok, summary = pcall(aigc.runner.run, { client = client, backend = "batch", batch_interval = 0.05,
      cases = { { id = 0.1, prompt = "Echo: number" }, { id = "0.1", prompt = "Echo: string" },
                { id = 7, prompt = "Echo: 7" } } })
    assert.is_true(ok, tostring(summary))
    assert.equal(3, summary.ok)
    local texts = {}
    for _, r in pairs(summary.results) do texts[#texts + 1] = type(r.id) .. " " .. tostring(r.id) .. "=" .. r.text end
    table.sort(texts)
    assert.same({ "number 0.1=number", "number 7=7", "string 0.1=string" }, texts)
  end)
end)
