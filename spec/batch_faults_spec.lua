-- aigc.batch against misuse: `bad argument #N to 'fn'` at the caller's
-- line, naming the function called and the argument.

local aigc = require "aigc"
local batch = require "aigc.batch"
local misuse = require "misuse"

local function ask (id, content)
  return { custom_id = id, body = { messages = { { role = "user", content = content } } } }
end
local REQS = { ask("fr", "Capital of France?") }

describe("aigc.batch misuse", function ()
  local client
  before_each(function () client = aigc.client { base_url = "http://127.0.0.1:9/v1", max_retries = 0 } end)
  after_each(function () client:close() end)

  it("raises bad argument #N to the function called, at the caller's line", function ()
    misuse.raises("bad argument #1 to 'run' %(aigc%.client expected, got nil%)",
                  function () batch.run(nil, REQS) end)
    misuse.raises("bad argument #1 to 'retrieve' %(aigc%.client expected, got the aigc%.batch module: "
                  .. "call aigc%.batch%.retrieve%(client, %.%.%.%) with '%.', not ':'%)",
                  function () batch:retrieve("x") end)
    misuse.raises("bad argument #2 to 'results' %(batch %(table%) expected, got nil%)",
                  function () batch.results(client, nil) end)
    misuse.raises("bad argument #1 to 'jsonl' %(non%-empty list of { custom_id =, body = } expected, got nil%)",
                  function () batch.jsonl(nil) end)
    misuse.raises("bad argument #1 to 'jsonl' %(requests%[2%]%.custom_id: duplicate 'fr'%)",
                  function () batch.jsonl { ask("fr", "a"), ask("fr", "b") } end)
    misuse.raises("bad argument #2 to 'jsonl' %(string expected, got number%)",
                  function () batch.jsonl(REQS, 5) end)
    misuse.raises("bad argument #2 to 'run' %(requests%[1%]: table expected, got string%)",
                  function () batch.run(client, { "x" }) end)
    misuse.raises("bad argument #3 to 'run' %(table expected, got string%)",
                  function () batch.run(client, REQS, "fast") end)
    misuse.raises("bad argument #3 to 'create' %(opts%.metadata: table expected, got string%)",
                  function () batch.create(client, REQS, { metadata = "m" }) end)
    misuse.raises("bad argument #3 to 'wait' %(opts%.interval: number of seconds >= 0 expected, got %-1%)",
                  function () batch.wait(client, "b", { interval = -1 }) end)
    misuse.raises("bad argument #3 to 'wait' %(opts%.on_progress: function expected, got string%)",
                  function () batch.wait(client, "b", { on_progress = "print" }) end)
    misuse.raises("bad argument #2 to 'wait' %(batch id expected, got nil%)", function () batch.wait(client) end)
    misuse.raises("bad argument #2 to 'cancel' %(batch id expected, got an empty string%)",
                  function () batch.cancel(client, "") end)
    misuse.raises("bad argument #1 to 'cancel' %(aigc%.client expected, got string%)",
                  function () batch.cancel("b") end)
    misuse.raises("bad argument #2 to 'download' %(file id expected, got nil%)",
                  function () batch.download(client) end)
    misuse.raises("bad argument #2 to 'upload' %(string expected, got nil%)", function () batch.upload(client) end)
  end)
end)
