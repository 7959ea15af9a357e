-- A download from a hostile server that announces a body larger than
-- max_response_bytes (a 10 GB Content-Length): refused at its headers with
-- kind "limit", no file made, not read until the limit or the server's end.
-- A LuaSocket child answers (spec/support/oneshot.lua).
local aigc = require "aigc"
local oneshot = require "oneshot"

-- The server (oneshot.announced) sends `sent` bytes of the `length` it
-- announced and closes: where the headers were not checked, the transfer
-- ends cut short (an error of kind "connect").

local function tmpname ()
  local p = os.tmpname()
  os.remove(p)
  return p
end

local function exists (path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

describe("download: a Content-Length over max_response_bytes", function ()
  local client
  before_each(function ()
    client = aigc.client { base_url = "http://127.0.0.1:9/v1", api_key = "sk-test-SECRET-dl-1", max_retries = 0 }
  end)
  after_each(function () client:close() end)

  it("10 GB announced: kind limit at the headers, no file and no .part left", function ()
    local port, child = oneshot.announced("image/png", 10737418240, 1000)
    local path = tmpname()
    local res, err = client:download("http://127.0.0.1:" .. port .. "/big.png", { to = path })
    child:wait(30)
    assert.is_nil(res)
    assert.equal("limit", err.kind)
    assert.matches("larger than max_response_bytes (67108864 bytes)", err.message, 1, true)
    assert.is_false(exists(path))
    assert.is_false(exists(path .. ".part"))
  end)

  it("over a call's own max_response_bytes, into a string too", function ()
    local port, child = oneshot.announced("image/png", 2000, 1000)
    local res, err = client:download("http://127.0.0.1:" .. port .. "/big.png", { max_response_bytes = 1500 })
    child:wait(30)
    assert.is_nil(res)
    assert.equal("limit", err.kind)
    assert.matches("(1500 bytes)", err.message, 1, true)
  end)

  it("at the limit exactly: downloaded", function ()
    local port, child = oneshot.announced("image/png", 1500, 1500)
    local res = assert(client:download("http://127.0.0.1:" .. port .. "/ok.png", { max_response_bytes = 1500 }))
    child:wait(30)
    assert.equal(("x"):rep(1500), res.body)
  end)
end)
