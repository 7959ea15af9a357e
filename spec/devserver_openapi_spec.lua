-- luacheck: std +busted
-- needs: Lua 5.4 (a spec of the bundled server, a Lua 5.4 program; it talks to it over sockets, never through aigc)
-- What the devserver sends, validated against ../shared/openapi/openapi.yaml
-- (or $AIGC_OPENAPI) with Python's jsonschema (spec/support/oas_check.py):
-- each reply and each streamed event of the endpoints added for issues 14,
-- 15 and 16, against its component schema. Independent of aigc and of the
-- devserver's own code. Pending, saying why, where python3-yaml /
-- python3-jsonschema or the spec file are missing.

local cjson = require "cjson"
local devserver = require "devserver"
local raw = require "rawhttp"
local proc = require "procutil"

local OPENAPI = os.getenv("AIGC_OPENAPI")
if not OPENAPI or OPENAPI == "" then OPENAPI = "../shared/openapi/openapi.yaml" end
-- Debian's python3 (which has python3-yaml and python3-jsonschema), not a
-- pyenv/venv python3 that may come first on PATH without them; $AIGC_PYTHON wins.
local PYTHON = os.getenv("AIGC_PYTHON")
if not PYTHON or PYTHON == "" then PYTHON = proc.exists("/usr/bin/python3") and "/usr/bin/python3" or "python3" end

local function tools_missing ()
  if not proc.exists(OPENAPI) then return "no OpenAPI file at " .. OPENAPI end
  local ok = proc.sh(PYTHON .. " -c 'import yaml, jsonschema'")
  if not ok then return PYTHON .. " with yaml and jsonschema (python3-yaml, python3-jsonschema) is not installed" end
  return nil
end

local b64decode = require("portable").b64decode

-- Validate docs = { {label =, schema =, instance = (JSON text)} ... }; returns the failures.
local function validate (docs)
  local input = os.tmpname()
  local f = assert(io.open(input, "w"))
  for _, d in ipairs(docs) do
    f:write('{"label":', cjson.encode(d.label), ',"schema":', cjson.encode(d.schema), ',"instance":', d.instance,
      "}\n")
  end
  f:close()
  local _, out = proc.sh(PYTHON .. " spec/support/oas_check.py " .. proc.quote(OPENAPI) .. " < " .. input)
  os.remove(input)
  local fails, oks = {}, 0
  for line in out:gmatch("[^\n]+") do
    if line:match("^ok ") then oks = oks + 1 else fails[#fails + 1] = line end
  end
  return fails, oks
end

-- The schema of each Responses stream event type.
local EVENT_SCHEMAS = {
  ["response.created"] = "ResponseCreatedEvent", ["response.in_progress"] = "ResponseInProgressEvent",
  ["response.output_item.added"] = "ResponseOutputItemAddedEvent",
  ["response.output_item.done"] = "ResponseOutputItemDoneEvent",
  ["response.content_part.added"] = "ResponseContentPartAddedEvent",
  ["response.content_part.done"] = "ResponseContentPartDoneEvent",
  ["response.output_text.delta"] = "ResponseTextDeltaEvent", ["response.output_text.done"] = "ResponseTextDoneEvent",
  ["response.refusal.delta"] = "ResponseRefusalDeltaEvent", ["response.refusal.done"] = "ResponseRefusalDoneEvent",
  ["response.function_call_arguments.delta"] = "ResponseFunctionCallArgumentsDeltaEvent",
  ["response.function_call_arguments.done"] = "ResponseFunctionCallArgumentsDoneEvent",
  ["response.reasoning_summary_part.added"] = "ResponseReasoningSummaryPartAddedEvent",
  ["response.reasoning_summary_part.done"] = "ResponseReasoningSummaryPartDoneEvent",
  ["response.reasoning_summary_text.delta"] = "ResponseReasoningSummaryTextDeltaEvent",
  ["response.reasoning_summary_text.done"] = "ResponseReasoningSummaryTextDoneEvent",
  ["response.completed"] = "ResponseCompletedEvent", ["response.failed"] = "ResponseFailedEvent",
  ["response.incomplete"] = "ResponseIncompleteEvent", error = "ResponseErrorEvent",
}

local WEATHER = { type = "function", name = "get_weather", strict = false,
  parameters = { type = "object", properties = { city = { type = "string" } }, required = { "city" } } }

describe("devserver replies against the OpenAPI description", function ()
  local srv, missing
  setup(function ()
    missing = tools_missing()
    if not missing then srv = devserver.start() end
  end)
  teardown(function () if srv then srv:stop() end end)

  local docs
  before_each(function () docs = {} end)

  local function add (label, schema, instance)
    docs[#docs + 1] = { label = label, schema = schema, instance = instance }
  end

  local function post (path, body, headers)
    local res = raw.call(srv.port, "POST", path, body, headers)
    assert.equal(200, res.status, res.body)
    return res
  end

  local function check ()
    local fails, oks = validate(docs)
    assert.same({}, fails)
    assert.equal(#docs, oks)
  end

  it("Responses: blocking replies, every stream event, retrieve, delete, input_items", function ()
    if missing then pending(missing); return end
    local bodies = {
      { input = "What is the capital of France?" },
      { model = "o-reasoner", input = "Hi", reasoning = { summary = "detailed" }, instructions = "Be kind." },
      { input = 'get_weather({"city":"Paris"})', tools = { WEATHER } },
      { input = "Hi", text = { format = { type = "json_schema", name = "x", schema = { type = "object",
        properties = { answer = { type = "string" } }, required = { "answer" }, additionalProperties = false } } } },
      { input = "Generate a short story about a robot that learns to paint.", max_output_tokens = 16 },
    }
    local last_id
    for i, b in ipairs(bodies) do
      local res = post("/v1/responses", b)
      add("response " .. i, "Response", res.body)
      last_id = res.json.id
      b.stream = true
      local s = raw.stream(srv.port, "/v1/responses", b)
      for k, ev in ipairs(s.events) do
        add(("stream %d event %d %s"):format(i, k, ev.event), EVENT_SCHEMAS[ev.event] or "?", ev.data)
      end
    end
    for _, spec in ipairs { "refusal", "failed-mid", "error-event", "incomplete" } do
      local s = raw.stream(srv.port, "/v1/responses", { input = "Hi" }, { ["x-aigc-fault"] = spec })
      for k, ev in ipairs(s.events) do
        add(("%s event %d %s"):format(spec, k, ev.event), EVENT_SCHEMAS[ev.event] or "?", ev.data)
      end
    end
    add("retrieve", "Response", raw.call(srv.port, "GET", "/v1/responses/" .. last_id).body)
    add("input_items", "ResponseItemList",
      raw.call(srv.port, "GET", "/v1/responses/" .. last_id .. "/input_items").body)
    local bg = post("/v1/responses", { input = "Hi", background = true })
    add("background", "Response", bg.body)
    add("cancel", "Response", raw.call(srv.port, "POST", "/v1/responses/" .. bg.json.id .. "/cancel").body)
    check()
  end)

  it("media: images, speech events, transcriptions, translations, moderations, files", function ()
    if missing then pending(missing); return end
    local function form (path, fields)
      local body, ctype = raw.multipart(fields)
      local res = raw.call(srv.port, "POST", path, body, { ["Content-Type"] = ctype })
      assert.equal(200, res.status, res.body)
      return res
    end
    add("images b64", "ImagesResponse", post("/v1/images/generations", { prompt = "a", size = "32x32",
      response_format = "b64_json", n = 2 }).body)
    add("images url", "ImagesResponse", post("/v1/images/generations", { prompt = "a", size = "32x32" }).body)
    add("images gpt", "ImagesResponse", post("/v1/images/generations", { model = "gpt-image-1", prompt = "a",
      size = "1024x1024", quality = "high", background = "opaque" }).body)
    local s = raw.stream(srv.port, "/v1/images/generations", { model = "gpt-image-1", prompt = "a",
      size = "1024x1536", partial_images = 1 })
    add("image partial", "ImageGenPartialImageEvent", s.events[1].data)
    add("image completed", "ImageGenCompletedEvent", s.events[2].data)
    local png = cjson.decode(post("/v1/images/generations", { prompt = "a", size = "16x16",
      response_format = "b64_json" }).body).data[1].b64_json
    local bytes = b64decode(png)
    local ebody, ectype = raw.multipart { { name = "prompt", value = "x" },
      { name = "image", filename = "a.png", value = bytes }, { name = "stream", value = "true" },
      { name = "partial_images", value = "1" } }
    local estream = raw.sse_events(raw.call(srv.port, "POST", "/v1/images/edits", ebody,
      { ["Content-Type"] = ectype }).body)
    add("edit partial", "ImageEditPartialImageEvent", estream[1].data)
    add("edit completed", "ImageEditCompletedEvent", estream[2].data)
    add("edit", "ImagesResponse", form("/v1/images/edits", { { name = "prompt", value = "x" },
      { name = "image", filename = "a.png", value = bytes } }).body)
    add("variation", "ImagesResponse", form("/v1/images/variations",
      { { name = "image", filename = "a.png", value = bytes } }).body)
    local sp = raw.stream(srv.port, "/v1/audio/speech", { input = "Hello", voice = "alloy", response_format = "pcm",
      stream_format = "sse" })
    add("speech delta", "SpeechAudioDeltaEvent", sp.events[1].data)
    add("speech done", "SpeechAudioDoneEvent", sp.events[#sp.events].data)
    local file = { name = "file", filename = "a.wav", value = "AIGC-TEXT:Hello there. Bye." }
    for _, model in ipairs { "whisper-1", "gpt-4o-transcribe" } do
      add("transcription json " .. model, "CreateTranscriptionResponseJson", form("/v1/audio/transcriptions",
        { file, { name = "model", value = model }, { name = "include[]", value = "logprobs" } }).body)
    end
    add("transcription verbose", "CreateTranscriptionResponseVerboseJson", form("/v1/audio/transcriptions",
      { file, { name = "model", value = "whisper-1" }, { name = "response_format", value = "verbose_json" },
        { name = "timestamp_granularities[]", value = "word" } }).body)
    local ts = raw.sse_events(form("/v1/audio/transcriptions", { file, { name = "model", value = "m" },
      { name = "stream", value = "true" } }).body)
    add("transcript delta", "TranscriptTextDeltaEvent", ts[1].data)
    add("transcript done", "TranscriptTextDoneEvent", ts[#ts].data)
    add("translation json", "CreateTranslationResponseJson", form("/v1/audio/translations",
      { file, { name = "model", value = "whisper-1" } }).body)
    add("translation verbose", "CreateTranslationResponseVerboseJson", form("/v1/audio/translations",
      { file, { name = "model", value = "whisper-1" }, { name = "response_format", value = "verbose_json" } }).body)
    add("moderation", "CreateModerationResponse", post("/v1/moderations", { input = { "kill", "hi" } }).body)
    add("moderation image", "CreateModerationResponse", post("/v1/moderations", { input = {
      { type = "text", text = "x" }, { type = "image_url", image_url = { url = "https://e.com/gore.png" } } } }).body)
    local up = form("/v1/files", { { name = "purpose", value = "batch" }, { name = "file", filename = "a.jsonl",
      value = "{}\n" } })
    add("file", "OpenAIFile", up.body)
    add("files", "ListFilesResponse", raw.call(srv.port, "GET", "/v1/files").body)
    add("file deleted", "DeleteFileResponse", raw.call(srv.port, "DELETE", "/v1/files/" .. up.json.id).body)
    check()
  end)

  it("batches, and the error bodies (429 of the rate limiter among them)", function ()
    if missing then pending(missing); return end
    local body, ctype = raw.multipart { { name = "purpose", value = "batch" }, { name = "file", filename = "b.jsonl",
      value = cjson.encode { custom_id = "a", method = "POST", url = "/v1/chat/completions",
        body = { messages = { { role = "user", content = "Hi" } } } } .. "\n" } }
    local fid = raw.call(srv.port, "POST", "/v1/files", body, { ["Content-Type"] = ctype }).json.id
    local b = post("/v1/batches", { input_file_id = fid, endpoint = "/v1/chat/completions", completion_window = "24h",
      metadata = { k = "v" } })
    add("batch validating", "Batch", b.body)
    local done = raw.wait_until(function ()
      local g = raw.call(srv.port, "GET", "/v1/batches/" .. b.json.id)
      return g.json.status == "completed" and g
    end, 5)
    add("batch completed", "Batch", done.body)
    local bid = raw.call(srv.port, "POST", "/v1/files", { purpose = "batch" }) -- JSON, not multipart
    assert.equal(400, bid.status)
    add("error 400", "ErrorResponse", bid.body)
    local bad2, ctype2 = raw.multipart { { name = "purpose", value = "batch" }, { name = "file", filename = "b.jsonl",
      value = "nope\n" } }
    local fid2 = raw.call(srv.port, "POST", "/v1/files", bad2, { ["Content-Type"] = ctype2 }).json.id
    add("batch failed", "Batch", post("/v1/batches", { input_file_id = fid2, endpoint = "/v1/chat/completions",
      completion_window = "24h" }).body)
    local c = post("/v1/batches", { input_file_id = fid, endpoint = "/v1/chat/completions", completion_window = "24h" })
    add("batch cancelling", "Batch", raw.call(srv.port, "POST", "/v1/batches/" .. c.json.id .. "/cancel").body)
    add("batches", "ListBatchesResponse", raw.call(srv.port, "GET", "/v1/batches").body)
    local limited = raw.call(srv.port, "POST", "/v1/chat/completions", { messages = { { role = "user",
      content = "Hi" } } }, { ["x-aigc-fault"] = "rate-limit=1,key=oas" })
    assert.equal(200, limited.status)
    limited = raw.call(srv.port, "POST", "/v1/chat/completions", { messages = { { role = "user", content = "Hi" } } },
      { ["x-aigc-fault"] = "rate-limit=1,key=oas" })
    assert.equal(429, limited.status)
    add("error 429", "ErrorResponse", limited.body)
    add("error 404", "ErrorResponse", raw.call(srv.port, "GET", "/v1/nothing").body)
    check()
  end)

  it("the checker rejects a reply that breaks the schema", function ()
    if missing then pending(missing); return end
    add("bad", "Response", '{"id":"resp_1","object":"response"}')
    add("bad event", "ResponseTextDeltaEvent", '{"type":"response.output_text.delta","delta":"x"}')
    local fails = validate(docs)
    assert.equal(2, #fails)
    assert.matches("^fail bad:", fails[1])
  end)
end)
