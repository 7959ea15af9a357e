--- Contract tests for issue 15's request shapes (images, audio,
-- moderations, files, embeddings), multipart bodies included, validated
-- against the OpenAI API description by Steady, as spec/contract_spec.lua
-- does for chat (see it for the harness: Steady reports each problem of a
-- request in `x-steady-error-N-*` headers, so every test checks them).
-- Where the spec file is absent every test is pending, saying so.

-- The shared preamble and checks (spec/contract/checks.lua, beside this file).
local checks = dofile((debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") or "") .. "contract/checks.lua")
local steady_errors = checks.steady_errors
-- Steady answered at `path` and found nothing wrong with the request.
local assert_valid = checks.assert_no_steady_errors

local function assert_accepted (res, err, what, path)
  assert_valid(res, err, what, path)
  assert(res ~= nil, ("%s: a valid request, and aigc returned an error: %s"):format(what, tostring(err)))
  return res
end

local PNG = "\137PNG\r\n\26\n" .. string.rep("\0", 64)
local WAV = "RIFF\0\0\0\0WAVEfmt " .. string.rep("\0", 32)

describe("contract: media (OpenAPI spec via Steady)", function ()
  -- Multipart arrays as `name[]` and objects as `name[key]`: what the
  -- official SDKs send (and the API reads); Steady must be told.
  local client
  local contract = checks.fixture(_ENV, { "--validator-form-array-format=brackets",
                                          "--validator-form-object-format=brackets" },
                                  function (c) client = c end)

  contract("images: generations (JSON)", function ()
    local res, err = client:images_generate { prompt = "a knight", model = "dall-e-3", size = "1024x1024",
                                              n = 1, quality = "hd", response_format = "b64_json", style = "vivid" }
    assert_accepted(res, err, "images generate", "/images/generations")
  end)

  contract("images: edits (multipart: image from memory, mask, several image[] parts)", function ()
    local res, err = client:images_edit { image = { data = PNG, filename = "in.png", type = "image/png" },
                                          mask = { data = PNG, filename = "mask.png", type = "image/png" },
                                          prompt = "add a hat", model = "dall-e-2", n = 2, size = "256x256" }
    assert_accepted(res, err, "images edit", "/images/edits")
    local images = { { data = PNG, filename = "a.png" }, { data = PNG, filename = "b.png" } }
    res, err = client:images_edit { image = images, prompt = "merge", model = "gpt-image-1" }
    assert_accepted(res, err, "images edit image[]", "/images/edits")
  end)

  contract("images: variations (multipart, from a path)", function ()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb")); f:write(PNG); f:close()
    local res, err = client:images_variation { image = path, model = "dall-e-2", n = 1, size = "256x256",
                                               response_format = "url" }
    os.remove(path)
    assert_accepted(res, err, "images variation", "/images/variations")
  end)

  contract("audio: speech (JSON; binary reply to a string)", function ()
    local res, err = client:speech { input = "Halt!", model = "tts-1", voice = "onyx", response_format = "wav",
                                     speed = 1.25 }
    assert_accepted(res, err, "speech", "/audio/speech")
  end)

  contract("audio: transcriptions and translations (multipart; arrays as name[])", function ()
    local res, err = client:transcribe { file = { data = WAV, filename = "note.wav" }, model = "whisper-1",
                                         response_format = "verbose_json", language = "en", temperature = 0,
                                         timestamp_granularities = { "word", "segment" }, prompt = "A note." }
    assert_accepted(res, err, "transcription", "/audio/transcriptions")
    res, err = client:translate { file = { data = WAV, filename = "note.wav" }, model = "whisper-1",
                                  response_format = "json" }
    assert_accepted(res, err, "translation", "/audio/translations")
  end)

  contract("moderations: text and multimodal input", function ()
    local res, err = client:moderate { input = { "hello", "world" }, model = "omni-moderation-latest" }
    -- (Steady answers one result whatever the input: aigc refuses a reply
    -- without one per input; the request itself must be valid)
    assert_valid(res, err, "moderation strings", "/moderations")
    assert(res or err.kind == "parse" and err.message:find("result%(s%) for 2 input%(s%)"), tostring(err))
    res, err = client:moderate { input = { { type = "text", text = "hi" },
                                           { type = "image_url", image_url = { url = "https://example.com/a.png" } } },
                                 model = "omni-moderation-latest" }
    assert_accepted(res, err, "moderation parts", "/moderations")
  end)

  contract("files: upload (multipart, expires_after[...]), list with a query, retrieve, content, delete", function ()
    local res, err = client:files_upload { file = { data = "{}\n", filename = "b.jsonl" }, purpose = "batch",
                                           expires_after = { anchor = "created_at", seconds = 3600 } }
    assert_accepted(res, err, "files upload", "/files")
    res, err = client:files_list { purpose = "batch", limit = 10, order = "asc", after = "file-abc" }
    assert_accepted(res, err, "files list", "/files")
    res, err = client:files_retrieve("file-abc")
    assert_accepted(res, err, "files retrieve", "/files/{file_id}")
    res, err = client:files_content("file-abc")
    assert_valid(res, err, "files content", "/files/{file_id}/content")
    res, err = client:files_delete("file-abc")
    assert_accepted(res, err, "files delete", "/files/{file_id}")
  end)

  contract("streams: images with partial_images, transcription with stream=true, speech as SSE", function ()
    -- The request shapes only (Steady's streamed content is random).
    local res, err = client:images_generate { prompt = "a knight", model = "gpt-image-1", partial_images = 2,
                                              stream = function () end }
    assert_valid(res, err, "images stream", "/images/generations")
    res, err = client:transcribe { file = { data = WAV, filename = "n.wav" }, model = "gpt-4o-transcribe",
                                   stream = true }
    assert_valid(res, err, "transcription stream", "/audio/transcriptions")
    res, err = client:speech { input = "hi", model = "gpt-4o-mini-tts", voice = "alloy", stream_format = "sse",
                               to = function () end }
    assert_valid(res, err, "speech sse", "/audio/speech")
  end)

  contract("embeddings: the default base64 request", function ()
    local res, err = client:embeddings { input = { "a", "b" }, model = "text-embedding-3-small" }
    assert_valid(res, err, "embeddings", "/embeddings")
  end)

  contract("negative: a multipart body without its required part is reported", function ()
    local res, err = client:transcribe { file = { data = WAV, filename = "n.wav" } }   -- no model
    local problems = table.concat(steady_errors((res and res.headers) or (err and err.headers)), "\n")
    assert.matches("model", problems, 1, true)
    assert.is_false((pcall(assert_accepted, res, err, "no model", "/audio/transcriptions")))
  end)
end)
