-- params.extra_body on the multipart calls (transcriptions, translations,
-- image edits and variations, file uploads): it was silently dropped. As
-- the OpenAI Python SDK (extra_body merged into the fields it serialises
-- as the form's data parts), its fields are sent as text parts, over the
-- params' own; a table (no single text part) or an upload's field in it
-- is a misuse error naming the field.
local aigc = require "aigc"
local devserver = require "devserver"

local function voice_note (text) return "RIFF\0\0\0\0WAVE" .. "AIGC-TEXT:" .. text end

describe("params.extra_body on multipart calls", function ()
  local srv, client
  -- (Lua 5.1 has no _ENV: nil, and the fixture reads the caller's environment)
  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { model = "aigc-dev" })

  local function parts_of (last)
    local names, by_name = {}, {}
    for _, p in ipairs(last.parts) do
      names[#names + 1] = p.name
      by_name[p.name] = p
    end
    return names, by_name
  end

  local note = { data = voice_note("Where is my order"), filename = "note.wav" }

  it("transcribe: its fields go as text parts, over the params' own (sent once)", function ()
    local res = assert(client:transcribe { file = note, language = "en", temperature = 0.2,
      extra_body = { language = "fr", vad_filter = true, beam_size = 5, temperature = 0.5 } })
    assert.equal("Where is my order", res.text)
    local names, parts = parts_of(srv:last())
    assert.same({ "beam_size", "file", "language", "model", "temperature", "vad_filter" }, names)
    assert.equal("fr", parts.language.value)
    assert.equal("5", parts.beam_size.value)
    assert.equal("true", parts.vad_filter.value)
    assert.equal("0.5", parts.temperature.value)
  end)

  it("translate, an image edit and a file upload send them too; aigc.null leaves a param out", function ()
    assert(client:translate { file = note, extra_body = { prompt = "x" } })
    assert.equal("x", select(2, parts_of(srv:last())).prompt.value)
    local png = assert(client:images_generate { prompt = "b", size = "16x16", response_format = "b64_json",
                                                model = "dall-e-2" }).data[1].bytes
    assert(client:images_edit { image = { data = png, filename = "a.png" }, prompt = "hat",
      response_format = "b64_json", extra_body = { seed = 7, response_format = aigc.null } })
    local names, parts = parts_of(srv:last())
    assert.same({ "image", "model", "prompt", "seed" }, names)
    assert.equal("7", parts.seed.value)
    assert(client:files_upload { file = { data = "{}\n", filename = "b.jsonl" }, purpose = "batch",
                                 extra_body = { expires_after_seconds = 3600 } })
    assert.same({ "expires_after_seconds", "file", "purpose" }, (parts_of(srv:last())))
  end)

  it("misuse: a table in it, an upload's field in it -- errors naming the field, nothing sent", function ()
    local function refused (call, params, pattern)
      local ok, e = pcall(call, client, params)
      assert.is_false(ok)
      assert.matches(pattern, tostring(e))
    end
    refused(client.transcribe, { file = note, extra_body = { timestamp_granularities = { "word" } } },
            "params%.extra_body%.timestamp_granularities: string, number or boolean expected")
    refused(client.transcribe, { file = note, extra_body = { file = "other.wav" } },
            "params%.extra_body%.file: an upload: give it in params%.file")
    refused(client.files_upload, { file = note, purpose = "batch", extra_body = { meta = { a = 1 } } },
            "params%.extra_body%.meta: string, number or boolean expected")
    assert.equal(0, srv:stats().requests_total)
  end)
end)
