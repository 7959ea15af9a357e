-- aigc.promptlog: a turn's image (audio, file) is logged in the turn's
-- own row, not only in later rows' context.

local aigc = require "aigc"
local cli = require "cli"
local devserver = require "devserver"
local logdb = require "logdb"
local promptlog = require "aigc.promptlog"

local image_message = logdb.image_message

describe("aigc.promptlog prompt parts", function ()
  local dir, path, log
  before_each(function () dir, path, log = logdb.open() end)
  after_each(function () logdb.close(dir, log) end)

  it("keeps the newest turn's image in its own row, and log:conversation gives it back", function ()
    local url = "data:image/png;base64," .. string.rep("iVBORw0KGgo", 600)   -- (over 4 KiB: a blob)
    local msg = image_message("What is it?", url)
    local cid = promptlog.new_id()
    local id = assert(log:record_call({ model = "m", messages = { msg } }, { text = "A cat." }, nil,
                                      { conversation_id = cid, leaf = true, extra = { case = "c1" } }))
    local row = assert(log:get(id))
    assert.equal("What is it?", row.prompt)
    assert.same(msg.content, row.extra.prompt_content)
    assert.equal("c1", row.extra.case)                 -- the caller's extra kept
    -- a second turn linked by parent_id: no context; the conversation has the image
    local id2 = assert(log:record_call({ model = "m", messages = { msg, { role = "assistant", content = "A cat." },
      { role = "user", content = "Sure?" } } }, { text = "Yes." }, nil,
      { conversation_id = cid, parent_id = id, leaf = true }))
    assert.is_nil(log:get(id2).extra)                   -- (a text prompt: nothing added)
    local conv = assert(log:conversation(cid))
    assert.same({ msg, { role = "assistant", content = "A cat." }, { role = "user", content = "Sure?" },
                  { role = "assistant", content = "Yes." } }, conv.messages)
  end)

  it("log:conversation takes an extra.prompt_content that is no list of parts as the prompt's text", function ()
    local cid = promptlog.new_id()
    assert(log:record_call({ model = "m", messages = { { role = "user", content = "Hi" } } }, { text = "Yo" }, nil,
                           { conversation_id = cid, leaf = true, extra = { prompt_content = { a = 1 } } }))
    assert.same({ { role = "user", content = "Hi" }, { role = "assistant", content = "Yo" } },
                assert(log:conversation(cid)).messages)
  end)

  it("a client's prompt_log: the last say's image is in the log", function ()
    log:close(); log = nil
    local srv = devserver.start()
    local client = aigc.client { base_url = srv.base_url, model = "aigc-dev", prompt_log = path }
    local url = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg"
    local conv = aigc.conversation { client = client }
    assert(conv:say("hello"))
    assert(conv:say(image_message("And this?", url)))
    client:close()
    srv:stop()
    log = assert(promptlog.open(path))
    local rows = assert(log:list { n = 0 })
    assert.equal(2, #rows)
    assert.equal("And this?", rows[1].prompt)
    assert.equal(url, rows[1].extra.prompt_content[2].image_url.url)
  end)
end)

describe("a client's prompt_log that cannot write", function ()
  local dir, path, srv
  before_each(function ()
    dir = cli.home()
    path = dir .. "/logs.db"
    srv = devserver.start()
  end)
  after_each(function ()
    srv:stop()
    cli.rmdir(dir)
  end)

  it("reports its first failure to the error_handler (not each call's), and again after it worked", function ()
    local reported = {}
    local client = aigc.client { base_url = srv.base_url, model = "aigc-dev", prompt_log = path,
                                 error_handler = function (e) reported[#reported + 1] = e end }
    assert(client:chat "Echo: logged")
    -- (a failing write, as a full disk's: root ignores file modes)
    local other = assert(promptlog.open(path))
    local function failing (on)
      assert(other.con:execute(on and "CREATE TRIGGER full BEFORE INSERT ON responses "
                                       .. "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
                                     or "DROP TRIGGER full"))
    end
    failing(true)
    assert(client:chat "Echo: lost one")          -- (the call itself is not failed by its log)
    assert(client:chat "Echo: lost two")
    assert.equal(1, #reported)
    assert.equal("log", reported[1].kind)
    assert.matches("the prompt log did not record a call: .*disk is full", reported[1].message)
    failing(false)
    assert(client:chat "Echo: logged again")
    assert.equal(1, #reported)
    failing(true)
    assert(client:chat "Echo: lost three")
    assert.equal(2, #reported)
    client:close()
    assert.equal(2, other:count())
    other:close()
  end)
end)

describe("a client's prompt_log and a failed stream", function ()
  it("logs the text the stream gave before it failed", function ()
    local dir = cli.home()
    local path = dir .. "/logs.db"
    local srv = devserver.start()
    local client = aigc.client { base_url = srv.base_url, model = "aigc-dev", prompt_log = path, max_retries = 0 }
    local got = {}
    local res, err = client:chat { messages = { { role = "user", content = "Echo: one two three four five six" } },
      stream = function (d) got[#got + 1] = d end, headers = { ["x-aigc-fault"] = "drop-after=3" } }
    assert.is_nil(res)
    assert.equal("stream", err.kind)
    client:close()
    srv:stop()
    local streamed = table.concat(got)
    assert.is_true(#streamed > 0)
    local log = assert(promptlog.open(path))
    local row = log:list({ n = 1 })[1]
    log:close()
    cli.rmdir(dir)
    assert.equal("stream", row.status)
    assert.equal(streamed, row.response)
  end)
end)

describe("a prompt log write that fails half way", function ()
  it("leaves nothing behind: no conversation without its entry, no blob", function ()
    local dir = cli.home()
    local log = assert(promptlog.open(dir .. "/logs.db"))
    local function count (q)
      local cur = assert(log.con:execute(q))
      local n = tonumber(cur:fetch({}, "n")[1])
      cur:close()
      return n
    end
    assert(log.con:execute("CREATE TRIGGER full BEFORE INSERT ON responses "
                           .. "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"))
    local big = string.rep("a long document ", 400)   -- (a blob)
    local id, err = log:record_call({ model = "m", messages = { { role = "user", content = big },
      { role = "assistant", content = "ok" }, { role = "user", content = "and?" } } }, { text = "fine" }, nil,
      { conversation_id = promptlog.new_id(), leaf = true })
    assert.is_nil(id)
    assert.matches("disk is full", tostring(err))
    assert.equal(0, count "SELECT count(*) FROM conversations")
    assert.equal(0, count "SELECT count(*) FROM blobs")
    assert.is_nil(log:last_conversation())
    -- and it writes again once it can
    assert(log.con:execute("DROP TRIGGER full"))
    assert(log:record_call({ model = "m", messages = { { role = "user", content = "hi" } } }, { text = "yo" }))
    assert.equal(1, log:count())
    log:close()
    cli.rmdir(dir)
  end)
end)
