-- files_upload_parts: a complete (`POST /uploads/{id}/complete`) or cancel
-- whose reply was lost on the way back (the server had done it) was sent
-- again by the engine, and the retry got 400 "Upload ... is completed"
-- (cancelled): the user saw a failure although the file was made (or the
-- error said the upload was not cancelled although it was). The devserver's
-- `reset,skip=N,times=1` fault loses the reply of the request N + 1 only.
local devserver = require "devserver"
local uploads = require "uploads"

describe("files_upload_parts after a lost reply", function ()
  local SECRET = "sk-test-SECRET-uploads-lost-reply"
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { api_key = SECRET, max_retries = 2, timeout = 30 })

  local file_of = uploads.file_of
  local function count (path) return uploads.count(srv, path) end

  it("a complete sent again after its reply was lost: the upload and its file, not the retry's 400", function ()
    local data = string.rep("lost-reply ", 30)
    -- create, part, then the complete's reply lost (the server completed it)
    local up, err = client:files_upload_parts { file = file_of(data), filename = "lost.jsonl", purpose = "batch",
                                                headers = { ["x-aigc-fault"] = "reset,skip=2,times=1" } }
    assert.is_nil(err)
    assert.equal(2, count("/v1/uploads/" .. up.id .. "/complete"))   -- (the retry got the 400)
    assert.equal(0, count("/v1/uploads/" .. up.id .. "/cancel"))
    assert.equal("completed", up.status)
    assert.equal("upload", up.object)
    assert.equal("lost.jsonl", up.file.filename)
    assert.equal(#data, up.file.bytes)
    local content = assert(client:files_content(up.file.id))
    assert.equal(data, content.body)
    local page = assert(client:files_list { purpose = "batch" })
    assert.equal(1, #page.data)   -- one file made, no second upload
  end)

  it("the file not to be found: still an error, saying the upload was completed, not cancelled", function ()
    -- two files of that name and size: which one is the upload's is unknown
    local data = string.rep("z", 40)
    assert(client:files_upload_parts { file = file_of(data), filename = "twin.jsonl", purpose = "batch" })
    local res, err = client:files_upload_parts { file = file_of(data), filename = "twin.jsonl", purpose = "batch",
                                                 headers = { ["x-aigc-fault"] = "reset,skip=2,times=1" } }
    assert.is_nil(res)
    assert.equal(400, err.status)
    assert.matches("the first try completed the upload", err.message, 1, true)
    assert.is_string(err.upload_id)
    assert.equal(0, count("/v1/uploads/" .. err.upload_id .. "/cancel"))
    assert.is_nil(tostring(err):find(SECRET, 1, true))
  end)

  it("a cancel sent again after its reply was lost: the error says cancelled", function ()
    -- the reader fails: the part never reaches the server whole; the
    -- cancel (the 2nd request the server answers) loses its reply
    local res, err = client:files_upload_parts { file = { size = 10, reader = function () error("disk gone") end },
      filename = "c.jsonl", purpose = "batch", headers = { ["x-aigc-fault"] = "reset,skip=1,times=1" } }
    assert.is_nil(res)
    assert.matches("disk gone", err.message, 1, true)
    assert.equal(2, count("/v1/uploads/" .. err.upload_id .. "/cancel"))
    assert.matches("(cancelled)", err.message, 1, true)
    assert.is_nil(err.message:find("not cancelled", 1, true))
  end)
end)
