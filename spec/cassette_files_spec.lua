-- The files a cassette makes: a new tape is private (0600, as the prompt
-- log and the disk cache are), one lock per tape whatever link names it,
-- and a FIFO at the tape's path refused, not waited on for ever.

local aigc = require "aigc"
local devserver = require "devserver"
local luachild = require "luachild"
local cli = require "cli"

local function mode (path)
  local p = assert(io.popen("stat -c %a '" .. path .. "'"))
  local m = p:read("*l")
  p:close()
  return m
end

describe("cassette files", function ()
  local dir
  before_each(function () dir = cli.home() end)
  after_each(function () cli.rmdir(dir) end)

  it("refuses a FIFO at the tape's path in every mode (its open waited for a writer for ever)", function ()
    local fifo = dir .. "/tape.jsonl"
    assert(os.execute("mkfifo '" .. fifo .. "'"))
    local r = luachild.run([[
      local aigc = require "aigc"
      for _, mode in ipairs { "record", "replay", "auto" } do
        print(mode, pcall(aigc.client, { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev",
                                         cassette = { path = arg[1], mode = mode } }))
      end
    ]], { args = { fifo }, timeout = 20 })
    assert.equal(0, r.status, r.stderr)
    for _, m in ipairs { "record", "replay", "auto" } do
      assert.matches(m .. "\tfalse\taigc.cassette: " .. fifo .. " is not a regular file (fifo)", r.stdout, 1, true)
    end
  end)
end)
