-- A NaN or an infinite number in a multipart call's fields (a transcription's
-- temperature computed from a game's state, extra_body, a table's entry) is
-- a misuse error naming the field, as in a JSON body ("cannot encode NaN"):
-- it went on the wire as "-nan" or "inf", text no API reads, and the call
-- came back with the server's 400 (or a value the server made up). Nothing
-- is sent. Real HTTP to the bundled server on loopback.
local devserver = require "devserver"

local NOTE = { data = "RIFF\0\0\0\0WAVE" .. "AIGC-TEXT:Where is the inn", filename = "note.wav" }
local PNG = { data = "\137PNG\r\n\26\n", filename = "hero.png" }

describe("numbers in multipart fields", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })

  local function raises (pattern, fn)
    local ok, err = pcall(fn)
    assert.is_false(ok)
    assert.matches(pattern, tostring(err))
  end

  it("NaN, inf and -inf raise naming the field; nothing is sent; the client stays usable", function ()
    local nan, inf = 0 / 0, math.huge
    raises("bad argument #1 to 'transcribe' %(params%.temperature: a finite number expected, got NaN%)",
           function () return client:transcribe { file = NOTE, temperature = nan } end)
    raises("params%.temperature: a finite number expected, got inf",
           function () return client:translate { file = NOTE, temperature = inf } end)
    raises("params%.extra_body%.beam_size: a finite number expected, got %-inf",
           function () return client:transcribe { file = NOTE, extra_body = { beam_size = -inf } } end)
    raises("params%.meta%.w: a finite number expected, got inf",
           function () return client:images_edit { prompt = "a hat", image = PNG, meta = { w = inf } } end)
    raises("params%.tags%[2%]: a finite number expected, got NaN",
           function () return client:images_variation { image = PNG, tags = { 1, nan } } end)
    assert.equal(0, srv:stats().requests_total)
    -- finite numbers go as before: integers whole, others the shortest text that reads back
    local res = assert(client:transcribe { file = NOTE, temperature = 0.1, extra_body = { beam_size = 2 ^ 53 } })
    assert.equal("Where is the inn", res.text)
    local parts = {}
    for _, p in ipairs(srv:last().parts) do parts[p.name] = p.value end
    assert.equal("0.1", parts.temperature)
    assert.equal("9007199254740992", parts.beam_size)
  end)
end)
