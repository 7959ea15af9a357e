-- The dataset runner and the Batch API at scale: a run of thousands of
-- cases admits each in O(1), a cases file as editors write it (a BOM,
-- CRLF) reads, a duplicate id names its lines, and a batch past the Batch
-- API's limits is refused before anything is uploaded.

local aigc = require "aigc"
local cli = require "cli"

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
end)
