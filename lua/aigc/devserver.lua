--[[
aigc devserver -- a local OpenAI-compatible HTTP/1.1 server (Lua 5.4, luv, lua-cjson).

It runs as its own process (or on a luv loop of your own through `start`),
so it needs Lua 5.4 whatever Lua the module under test uses; it is an
optional development module: aigc itself never loads it. The package:
lua/aigc/devserver.lua (this file: the contract, start/run, arguments) and
lua/aigc/devserver/*.lua -- server (socket, scheduler), parser (HTTP
requests), conn (a connection's life), respond (writing responses and wire
faults), api (routes, auth, bodies, faults), records (stats, recorded
requests, control endpoints), faults (the grammar), json (ordered writer),
multipart, util, ratelimit, and the endpoints: chat, completions, embeddings
(with models), responses (+ responses_build, responses_stream), images (+ png),
speech, transcribe, moderations, files, batches; their reply rules in replies
(the rule data), schema (structured output), tools, tokens.

It backs `make demo`, the module's transport tests and anyone's own scripts
or CI: deterministic replies, real sockets, keep-alive, streaming with real
pauses, and every transport fault a client must survive, on request.

USAGE
  lua5.4 lua/aigc/devserver.lua [--host 127.0.0.1] [--port 8089] [--port-file PATH]
      [--pause-ms N] [--api-key-file PATH | --api-key KEY] [--quiet] [--parent-pid PID]
      [--exit-after SECONDS] [--idle-timeout SECONDS] [--tokenizer words|words2]
      [--rate-limit RPM or RPM,TPM] [--batch-delay-ms N]
  require("aigc.devserver").run{ host =, port =, port_file =, pause_ms =, api_key =, quiet =,
                                 idle_timeout =, tokenizer =, rate_limit = "RPM,TPM", batch_delay_ms = }

  --port 0 picks a free port. When ready, exactly one line goes to stdout:
  `aigc devserver listening on http://HOST:PORT/v1`, and PORT is written to
  --port-file (temp name, then rename: a reader never sees a partial file).
  One log line per request goes to stderr unless --quiet; no header values,
  no query strings, so no secrets. SIGTERM/SIGINT stop it at once, whatever is
  in flight (every connection is dropped; run() returns).
  --idle-timeout S (default 60; 0 = never): a keep-alive connection with no
  request in progress and no byte received for S seconds is closed.
  API requests start from an idle handle a few milliseconds' worth at a time,
  never inside a read callback, so a storm of requests cannot starve the loop:
  departures, control requests and signals are seen between them; a request
  whose client left before it started costs nothing. A client that goes
  takes its timers, coroutine and descriptor with it.
  --parent-pid PID: exit when that process is gone (polled every 0.5 s; a
  zombie counts as gone). --exit-after S: exit after S seconds whatever happens.
  The test helper (spec/support/devserver.lua) passes both, so a crashed test
  run never leaves a server behind.

ENDPOINTS (paths without /v1 are 404; wrong method 405; errors in OpenAI's wire format)
  POST /v1/chat/completions   POST /v1/completions   POST /v1/embeddings
  GET  /v1/models             GET  /v1/models/{id}
  POST /openai/deployments/{deployment}/{chat/completions|completions|embeddings}?api-version=...
       (Azure style: model = deployment; the key may come in `api-key`)
  POST /v1/responses          GET|DELETE /v1/responses/{id}
  POST /v1/responses/{id}/cancel          GET /v1/responses/{id}/input_items  (see RESPONSES)
  POST /v1/conversations   GET|POST|DELETE /v1/conversations/{id}   GET|POST .../{id}/items
  GET|DELETE .../{id}/items/{item_id}   (in memory; a response with `conversation` adds its
       input and output items to it)
  POST /v1/images/generations   POST /v1/images/edits*   POST /v1/images/variations*
  POST /v1/audio/speech   POST /v1/audio/transcriptions*   POST /v1/audio/translations*
  POST /v1/moderations    POST /v1/files*   GET /v1/files   GET|DELETE /v1/files/{id}
  GET  /v1/files/{id}/content                                         (see MEDIA)
  POST /v1/uploads   POST /v1/uploads/{id}/parts*   POST /v1/uploads/{id}/complete|cancel
                       (complete: the parts' bytes in part_ids order make a file; md5 not checked)
  POST /v1/batches   GET /v1/batches   GET /v1/batches/{id}   POST /v1/batches/{id}/cancel
                                                                      (see BATCHES)
  (* multipart/form-data: boundary required, every part with Content-Disposition
  form-data and a name, the closing delimiter; else 400 code invalid_multipart.
  Recorded with `parts` instead of `body`: name, filename, content_type, size,
  crc32, and value for text fields <= 4 KiB.)
  --api-key-file PATH: API requests need `Authorization: Bearer KEY` or
  `api-key: KEY`, KEY the file's text (one line; spaces around it and the
  newline dropped), else 401 invalid_api_key with the key masked.
  --api-key KEY does the same, but any `ps` shows a command line's KEY.
  Every response: x-request-id (req_<hex>), openai-version, openai-processing-ms,
  x-ratelimit-{limit,remaining,reset}-{requests,tokens} (constants unless a rate
  limiter applies: see RATE LIMITS), Content-Type and, unless streamed,
  Content-Length. Keep-alive by default; `Connection: close` honoured.
  Requests: Content-Length or chunked bodies, pipelining, `Expect: 100-continue`,
  64 MiB limit (413). A client that closes (or half-closes) its side while its
  request is pending counts as gone: `client_closed` (like nginx's 499).

CONTROL (no auth; not counted, not recorded)
  GET  /_aigc/stats     {requests_total, open_now, max_open, connections_total,
                         connections_open, max_connections_open, client_closed_total,
                         idle_closed_total, rate_limited_total, timers_active,
                         jobs_active, jobs_waiting, responses_messages_kept,
                         responses_history_read}
                        (timers_active, jobs_active, jobs_waiting: live connection
                        timers, API responses in progress, API requests read but not
                        started; responses_messages_kept: the messages the stored
                        responses keep for previous_response_id chains, each turn's
                        once; responses_history_read: the messages of earlier turns
                        read to answer one -- a turn keeps its chain's counts, so
                        only a json_object reply reads them, for a schema)
  POST /_aigc/reset     zero the counters and high-water marks (to the current
                        gauges), forget recorded requests, `times` fault counters,
                        stored responses, files, batches (stopped), image URLs, and
                        refill the rate limiters
  GET  /_aigc/requests  the last 200 API requests, oldest first:
                        {id, method, path, query, headers, body, body_bytes, parts,
                         body_json, status, stream, client_closed, fault, writes,
                         auth_header, authorization_prefix, authorization_len,
                         authorization_ok}
  GET  /_aigc/last      the last one (null if none)
  GET  /_aigc/files/NAME  an image a `url` result names (see MEDIA)
  `writes` counts the socket writes of the response (byte-writes: one per byte).
  `body` is the raw body exactly as received (cjson cannot keep 64-bit integers;
  body_json is cjson's view). Header names are lower case; the values of
  `authorization`, `api-key`, `x-api-key` and `proxy-authorization` are replaced
  by "<redacted len=N>".
  auth_header: "authorization" | "api-key" | null; authorization_prefix: the
  scheme word ("Bearer"); authorization_len: length of the credential;
  authorization_ok: whether it equals --api-key (null when no key is configured).
  Open = from a request's last body byte to its last response byte (or the
  connection's end). A connection is counted once it carries an API request.

REPLIES (deterministic: same model, messages, seed, temperature, choice index -> same text)
  The last user message picks a rule: `Repeat after me: X` / `Echo: X` -> X
  exactly; capitals ("What is the capital of France?" -> "The capital of France
  is Paris."); a ~150-token story for "...story about a robot that learns to
  paint"; arithmetic ("What is 2 + 2?"); jokes, greetings, how-are-you, name,
  weather, thanks, goodbye; customer service (refund, order tracking, password,
  cancellation, shipping, damaged item, opening hours); else a generic sentence
  quoting the message, worded differently in later turns. Each rule has 3
  variants chosen by a hash of (model, seed, choice index, turn, message);
  temperature 0 always takes the first, so all choices agree; so does choice 0
  of a request without a seed (the canonical answers quoted here).
  Tokens are words with their leading whitespace (their concatenation is the
  text). max_tokens / max_completion_tokens cut with finish_reason "length"
  (completions default to 16, as OpenAI does); `stop` (string or <= 4) cuts
  before the first occurrence with "stop"; n = 1..128.
  usage.prompt_tokens = words in all messages + 4 per message.
  Judge contract (checked before the rules, ignores seed and temperature):
  * the last user message has lines `Candidate N:` (text runs to the next
    `Candidate M:` line or the end) and the words `best candidate` -> the reply is
    the number N of the candidate with the most words (ties: lowest N), e.g. "2";
  * it contains `Score the candidate` -> the reply is min(10, words // 10 + 1)
    counted in the text after `Candidate:` (else after the first `Candidate N:`).
  Classify contract (after the judge's): a line `Categories: a, b, c` -> the reply is
  the category named earliest in the text after `Input:` (else in the rest of the
  message), as a word, case-insensitive, `_` as a space, a final `s` optional;
  none named -> the last category.
  Tools: with `tools`, every `name(ARGS)` in the last user message is a call
  with arguments = ARGS verbatim (to the matching parenthesis, may be invalid
  JSON); a bare `name` -- or the name with `_`/`-` as spaces, any case ("track
  order" for track_order) -- is a call with a minimal valid instance of its
  parameters, derived from the message: string properties named *id, *number or
  *code take the first word of the message that has a digit ("A-1042"); enum
  values named in the message win (see below).
  tool_choice "none" -> no calls, "required" -> the first tool if none is named,
  {type="function", function={name=X}} -> X. parallel_tool_calls=false keeps one.
  If the last message is role "tool": "Here is what I found: <contents joined by '; '>".
  response_format json_schema -> compact JSON of a deterministic valid instance
  (all properties; strings named say/text/answer/reply/message/content carry the
  reply; an enum takes the first of its values named as a word in the last user
  message (`_` as a space), else with a seed one chosen by a hash of (seed,
  property, turn), else the first); json_object -> the instance of the schema that a message gives after the
  words `JSON schema:` (the rest of that message), else {"reply": "<reply>"}.
  logprobs: deterministic values.
  Embeddings: unit vectors from a hash of the input (1536 dims, 3072 for
  *-large, or `dimensions`), float32-exact; encoding_format "base64" gives
  little-endian float32.

STREAMING (stream: true): text/event-stream, chunked, `data: <json>\n\n` events,
  `data: [DONE]` last. Chat: per choice a role delta, one delta per token, a `{}`
  delta with finish_reason; n > 1 interleaves round robin; include_usage adds
  usage:null to every chunk and a final choices:[] usage chunk. Tool calls: a
  header delta per call, then argument pieces of <= 8 bytes. The accumulated
  stream equals the non-streamed response except id and created.
  --pause-ms N (or fault pause=MS) sleeps between events.

RESPONSES (the Responses API; shapes of ../shared/openapi/openapi.yaml, checked by
  spec/devserver_openapi_spec.lua)
  `input`: a string (one user message) or a list of items: messages {role, content:
  string | parts (input_text, input_image...)}, function_call, function_call_output.
  `instructions` is a developer message (counted in usage, not carried over a chain).
  The reply follows the chat rules above on the last user message (turns counted
  across the chain); function tools {type="function", name, parameters} are called as
  in chat (`name(ARGS)`, bare names, tool_choice "none" | "required" |
  {type="function", name=X}, parallel_tool_calls); function_call_output items last
  -> "Here is what I found: <outputs joined by '; '>" (an output given as a list of
  input_text parts: their text). text.format json_schema /
  json_object -> the same instances as chat's response_format. max_output_tokens
  (>= 16 as the spec says, less is a 400) cuts the text: status "incomplete",
  incomplete_details {reason="max_output_tokens"}.
  Output items: a reasoning item first when the model name contains "reason" or
  `reasoning` is given (its summary: one summary_text part, two with summary
  "detailed"; none with summary "none" or when reasoning is given without summary on
  a model without "reason"), then a message (output_text) or the function_calls.
  include ["reasoning.encrypted_content"] gives the reasoning item an
  encrypted_content; a reasoning item in an input needs it, or the id of a stored
  response's item (else 404 "Item with id 'rs_...' not found. Items are not
  persisted when `store` is set to false...", as OpenAI).
  Ids: resp_, msg_, rs_, fc_ (item), call_ (call_id). usage {input_tokens,
  input_tokens_details {cached_tokens=0, cache_write_tokens=0}, output_tokens
  (reasoning included), output_tokens_details {reasoning_tokens}, total_tokens}.
  Stored unless store=false (forgotten by /_aigc/reset): previous_response_id
  chains (unknown id -> 400, param previous_response_id), GET, DELETE ({id,
  object="response", deleted=true}; then 404), input_items ({object="list", data,
  first_id, last_id, has_more}; order desc by default, limit 1..100 (20), after).
  background=true: answered "queued" at once, "in_progress" 10 ms later, done after
  (pause=MS or --pause-ms, at least 20) ms x its stream's events; POST .../cancel ->
  "cancelled" (400 for a response without background, or one already finished;
  idempotent once cancelled). background with store=false is a 400. A background
  response (streamed or not) keeps its events: GET /v1/responses/{id}?stream=true
  [&starting_after=N] replays those after N, paced as a stream; a cancel ends it;
  400 for a response without background, a cancelled one, a bad starting_after.
  Streaming: `event: <type>` + `data: <json>` per event, every event with
  sequence_number 0, 1, 2...; no [DONE]: response.created and response.in_progress
  (status in_progress, output [], no usage), then per output item:
  response.output_item.added (empty item), reasoning:
  response.reasoning_summary_part.added, response.reasoning_summary_text.delta
  (one per token), .._text.done, .._part.done; message: response.content_part.added,
  response.output_text.delta (one per token, logprobs []) | response.refusal.delta,
  response.output_text.done | response.refusal.done, response.content_part.done;
  function call: response.function_call_arguments.delta (pieces <= 8 bytes),
  response.function_call_arguments.done (with name); then response.output_item.done;
  last response.completed (or response.incomplete) whose payload equals what the
  events accumulate to, and the blocking reply (ids and times aside).
  Faults of this API (with the transport and stream faults above):
    seq-gap              the 5th event and later are numbered one too high (a gap)
    seq-disorder         the 5th and 6th events are sent in swapped order
    failed-mid           after the 2nd delta: response.failed (status "failed", error
                         {code="server_error", message}, output []), then the end;
                         blocking: the reply has status "failed" and that error
                         (background: "queued", failed when its time is up; either
                         way the stored response is that failed one)
    failed-after-error   with error-event or echo-key: a response.failed 50 ms after
                         the error event (its error's message echoes the key with
                         echo-key), as OpenAI sends one
    truncate             every event but the last (response.completed): the HTTP
                         response itself ends properly
    incomplete           the text cut at half its tokens: status incomplete,
                         reason max_output_tokens (response.incomplete)
    refusal              the message is a refusal part "I'm sorry, but I can't help
                         with that." (response.refusal.delta/done)
    error-event / error-data / echo-key   an `error` event {type="error", code,
                         message, param, sequence_number} (+ details with echo-key)

MEDIA (shapes of openapi.yaml, checked by spec/devserver_openapi_spec.lua)
  Images: real PNG files (4-colour palette, 2 bits per pixel, zlib stored blocks,
  CRC-32 and Adler-32 right) of `size` "WxH" (1..4096 a side; "auto" -> 1024x1024,
  edits: the input's size), n 1..10, 32-pixel blocks in a pattern and palette from a
  hash of (prompt | uploaded bytes, index): the same request, the same bytes;
  background="transparent" -> colour 0 transparent (tRNS). response_format b64_json,
  or url (default except for gpt-image-* models): http://HOST/_aigc/files/img_<id>.png,
  HOST the request's Host (plus our port when it has none), served by this server
  (GET, no auth, not recorded; the last 64 images). output_format other than png ->
  400 (PNG only). gpt-image-* replies add size (when 1024x1024, 1024x1536 or
  1536x1024), quality, background, output_format and usage; dall-e-3 adds
  revised_prompt "A picture of <prompt>". stream=true (+ partial_images 0..3):
  `event: image_generation.partial_image` (edits: image_edit.*) events with
  partial_image_index and an image whose rows below the progress are plain, then
  .completed with usage; no [DONE]. Edits: image or image[] (<= 16, PNG/JPEG/WebP/
  GIF bytes), mask (a PNG of the image's size, else 400 param "mask"), prompt.
  Variations: image; no stream.
  Speech: input and instructions (<= 4096 characters, UTF-8), voice (a built-in name, each its own pitch, or
  {id="voice_..."}), speed 0.25..4, response_format: wav (RIFF 24 kHz 16-bit mono,
  a tone per letter and silence per whitespace, 50 ms / speed each, at least 200 ms;
  a LIST/INFO/ICMT chunk holds "AIGC-TEXT:<input>"), pcm (those samples raw), mp3 (the
  default: valid MPEG-2 Layer III frames of silence, 32 kbit/s 24 kHz mono -- no MP3
  encoder here), opus/aac/flac -> 400 unsupported_value. Chunked transfer in 100 ms
  pieces, pause=MS (or --pause-ms) between them; drop-after=N cuts after N pieces;
  header x-aigc-audio-seconds. stream_format "sse": `event: speech.audio.delta`
  {type, audio (base64)} per piece, then speech.audio.done {type, usage}.
  Transcriptions / translations: file (extension flac m4a mp3 mp4 mpeg mpga oga ogg
  wav webm, else 400), model. The text: what follows "AIGC-TEXT:" in the file (to a
  NUL or the end -- speech's WAVs round-trip), else `prompt`, else "Audio file
  NAME, N bytes."; duration from a WAV header, else 0.4 s per word. response_format
  json ({text, usage}: whisper-1 {type="duration", seconds}, others {type="tokens"};
  logprobs with include[]=logprobs), text, srt, vtt, verbose_json (task, language
  "english", duration, segments per sentence, words with
  timestamp_granularities[]=word). Transcriptions with stream=true: `data:` events
  transcript.text.delta (per word) then transcript.text.done {text, usage}; whisper-1
  ignores stream. A body over 25 MiB: 413 "Maximum content size limit (26214400)...".
  Moderations: input a string, strings (one result each) or text/image_url parts (one
  result); the 13 categories, flagged by keywords (moderations.lua CATEGORIES, whole
  words, any case; an image by its URL or the AIGC-TEXT in a base64 data URL); scores
  0.9.. when flagged, < 0.01 else, deterministic; category_applied_input_types.
  Files: upload (file, purpose in assistants batch fine-tune vision user_data evals,
  expires_after[seconds] 3600..2592000), list (purpose, order desc|asc, limit
  1..10000, after, has_more), retrieve, content (the bytes, the upload's
  Content-Type), delete; in memory, forgotten by /_aigc/reset.

BATCHES (shapes of openapi.yaml: Batch, ListBatchesResponse)
  POST /v1/batches {input_file_id (a file with purpose "batch"; else 404 / 400),
  endpoint (/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses,
  /v1/moderations, /v1/images/generations), completion_window "24h", metadata}.
  Input lines: {"custom_id", "method": "POST", "url": <the endpoint>, "body"}; an
  invalid file (bad JSON, missing or duplicate custom_id, other method or url, no
  body, no lines) makes the batch "failed" at once, errors {object="list", data=
  [{code, message, param, line}]}. Else: validating -> in_progress, then one line per
  tick of --batch-delay-ms (20) or metadata.aigc_delay_ms ("100"), answered by this
  server's own endpoint (not recorded, not rate-limited; a body model `fault:SPEC`
  applies its status= / body faults: `fault:status=500` fails that line), then
  finalizing -> completed. Output file (<id>_output.jsonl, purpose batch_output):
  the 2xx lines {id "batch_req_..", custom_id, response {status_code, request_id,
  body}, error null}; error file (<id>_error.jsonl): the others, same shape.
  request_counts {total, completed, failed}; usage sums the lines' usage; model = the
  first line's. metadata.aigc_expire_after ("N"): after N lines the window passes,
  "expired" with the files of the lines done, the others in the error file {custom_id,
  response null, error {code "batch_expired", message}}. POST .../cancel:
  "cancelling" now, "cancelled" at the next tick with
  the files of the lines done (again: no change; a finished batch: 409). GET
  /v1/batches: newest first, limit 1..100 (20), after, has_more. /_aigc/reset
  forgets batches and stops them.

RATE LIMITS: --rate-limit RPM or RPM,TPM (the server's), or per request the faults
  rate-limit=RPM [rate-limit-tpm=TPM] [key=K] (one limiter per key; reset forgets).
  Token buckets as OpenAI's: full at start (a minute's worth: RPM requests, TPM
  tokens), refilled continuously (RPM/60 a second); a request costs 1 request and
  (body bytes / 4 + max_tokens | max_completion_tokens | max_output_tokens | 16)
  tokens. Short of either: 429 {error: {message "Rate limit reached for MODEL in
  organization org-aigc-dev on requests per min (RPM): Limit L, Used U, Requested R.
  Please try again in D. Visit https://platform.openai.com/account/rate-limits to
  learn more.", type "requests" | "tokens", param null, code
  "rate_limit_exceeded"}}, retry-after (whole seconds, >= 1), retry-after-ms, and
  stats.rate_limited_total + 1. Every response under a limiter carries
  x-ratelimit-limit-*, x-ratelimit-remaining-* (whole units left) and
  x-ratelimit-reset-* (until the bucket is full again) for requests and, with a
  TPM, tokens; durations as OpenAI writes them: 0s, 20ms, 1.5s, 6m0s, 1h2m3s.
  Control requests and batch lines are never limited.

TOKENIZER (usage counts, all endpoints): --tokenizer words (default: a token per word,
  4 per message) | words2 (2 per word, 3 per message: unlike a 4-characters-per-token
  estimate, for clients that calibrate); per request the fault tokenizer=words2.

FAULTS -- header `x-aigc-fault: <spec>` or model `fault:<spec>` (both: merged, header
  last); <spec> = comma-separated `name` or `name=value` items, combinable.
  An unknown name or bad value is a 400 naming it. Recorded as `fault`.
  status=CODE            answer CODE with an OpenAI error body of the matching
                         type/code (400 invalid_request_error, 401 invalid_api_key,
                         403 permission_denied, 404 model_not_found, 409 conflict,
                         422 unprocessable_entity, 429 rate_limit_exceeded (type
                         "requests"), 5xx server_error); a 2xx/3xx CODE sends the
                         normal reply with that status
    retry-after=V        `Retry-After: V` verbatim; V = date+S -> HTTP-date S s from now
    retry-after-ms=MS    `retry-after-ms: MS`
    should-retry=B       `x-should-retry: true|false`
    body=text            HTML body, Content-Type text/html
    body=nokey           JSON object without `error`: {"detail": "..."}
  times=N[,key=K]        apply only to the first N requests carrying key K
                         (default key: the whole spec); later ones are normal
  skip=N[,key=K]         pass over the first N requests carrying key K (with times:
                         then apply to the next N): `reset,skip=2,times=1` hits the 3rd
  delay=MS               wait before the status line
  hang                   never answer; keep the connection until the client goes
  drip=MS                the whole response one byte every MS ms (headers too)
  Headers (any response, errors included):
    headers=N            N extra headers `x-f-1: a` ... `x-f-N: a` (N <= 1000000)
    raw-header=TEXT      one extra header line TEXT verbatim, after the normal ones
                         (e.g. `raw-header=HTTP/1.1-x: 1`); `%2C` in TEXT is a comma;
                         repeatable
    bad-gzip             `Content-Encoding: gzip` on a body (JSON or SSE) that is not gzip
    informational=N      N `HTTP/1.1 100 Continue` responses before the real one
                         (N <= 1000000)
    echo-key             echo the request's credential (the Bearer value or `api-key`)
                         in `x-echo: KEY` and `x-request-id: req_KEY`; with status=CODE
                         the error body carries it in `message`, `error.details.key` and
                         `error.details.list` (2nd of 3); a 200 reply's text ends with
                         "Your API key is KEY."; a stream sends one chunk, then
                         `event: error` with that error JSON, then ends
  Bodies of a 200 reply (always non-streamed application/json):
    body=malformed       {"id":"x","choices":[         (truncated JSON)
    body=empty           Content-Length: 0
    body=not-object      [1,2,3]
    body=no-choices      the normal reply without `choices`
    body=choices-not-array   "choices": "oops"
    body=deep            100000 `[` then 100000 `]`
    body=huge-number     the normal reply with "created": 1e400
    body=invalid-utf8    the reply text followed by the raw bytes \xff\xfe
    body=huge,size=BYTES the text/content is BYTES long (default 1 MiB)
    body=empty-arrays[,size=BYTES]  the normal reply plus `"x":[[],[],...]`, the value
                         about BYTES long (default 1 MiB): a JSON value flood
    tool-calls=hostile   chat: the message has `"tool_calls":[1]`, content null,
                         finish_reason "tool_calls" (streamed: a `{"tool_calls":[1]}` delta)
    plain-for-stream     a stream request gets the one plain application/json reply
                         (as a server that ignores `stream` does)
    ignore-n             chat: `n` is ignored, one choice comes back (llama.cpp, Ollama)
    default-temperature  chat, responses: a `temperature` other than 1 is refused (400,
                         param temperature), as OpenAI's reasoning models do
    url-page             images: each `url` serves a 200 text/html page, not the PNG (a
                         captive portal's, a CDN's "link expired" page)
  Connection:
    close-mid-body       promise the whole body, send half, close (FIN)
    long-body            send the body then extra garbage; the connection stays open
    reset                send half the body, then RST (luv tcp:close_reset)
    garbage-status       `HTXP/9.9 banana\r\n\r\n`, then close
  Streams (stream: true):
    pause=MS             sleep MS between events
    drop-after=N         close after N events: no [DONE], no terminating chunk
    no-done              every event but [DONE]; the response ends properly
    error-event          after 2 events `event: error` + an error JSON, then end
    error-data           after 2 events `data: {"error":{...}}`, then end
    crlf | cr            every line end is CRLF | CR
    comments             a `: keep-alive` line before every event
    no-space             `data:{...}`
    multiline            each JSON split into several data: lines after its commas
    byte-writes          every byte in its own write, TCP_NODELAY
    no-finish-reason     the final chunks keep finish_reason null
    malformed-chunk      the 2nd event's JSON is cut in half
    repeat-ids           tool-call deltas repeat id, type and name
    content-filter       an Azure prompt_filter_results chunk first
    huge-line=BYTES      after the first event, one BYTES-long `data: ` line with no
                         line end, then close
    event-bytes=BYTES    after the first event, one valid chunk whose content
                         (text) delta is BYTES long
    dup-key              chat: the 2nd content delta (the first token's; the role delta
                         is the 1st) is exactly `{"content":"a","content":"b"}`
    comment-drip=MS      (any request) headers of an SSE stream, then one comment line
                         `:` every MS ms forever, never data, until the client goes
  Endpoint faults: the Responses API's (seq-gap, seq-disorder, failed-mid, truncate,
  incomplete, refusal, failed-after-error: see RESPONSES), tokenizer=words2 (TOKENIZER), rate-limit=RPM,
  rate-limit-tpm=TPM (RATE LIMITS).
  Structured output (chat with response_format json_schema / json_object):
    schema=violate       the instance breaks its schema, deterministically: in every
                         object the first required property is left out and, when
                         additionalProperties is false, "unexpected": true is added;
                         strings become 42, numbers "NaN", booleans "yes"
    schema=not-json      the reply is prose, not JSON: "Sure! Here is the JSON you asked for."
    no-json-schema       response_format json_schema is refused with a 400 (param
                         "response_format"), as servers without structured outputs do
    no-json-schema=422   ... with a plain-text 422 naming response_format, as servers
                         whose request parser refuses the type do (DeepSeek's words)
]]

-- Run as a script (`lua5.4 lua/aigc/devserver.lua`) from any directory:
-- the package's files sit next to this one, so its root joins package.path.
do
  local dir = debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$")
  if dir and not package.searchpath("aigc.devserver.server", package.path) then
    package.path = (dir == "" and "./" or dir) .. "../?.lua;" .. package.path
  end
end

local uv = require "luv"
local server = require "aigc.devserver.server"

local match = string.match

local M = { _VERSION = "0.1.0" }   -- aigc's version (spec/version_spec.lua)

--- Start a server on the current luv loop (does not run the loop).
-- Options: `host` ("127.0.0.1"), `port` (8089; 0 = any free port), `port_file`,
-- `pause_ms` (0), `api_key`, `quiet`, `parent_pid`, `exit_after` (seconds),
-- `idle_timeout` (seconds, 60; 0 = never), `tokenizer` ("words" | "words2"),
-- `announce` (default true: print the "listening" line).
-- @tparam[opt] table opts
-- @treturn table server `{port =, url =, stats =, close = function}`, or nil and a message
-- @usage local srv = assert(require("aigc.devserver").start{ port = 0 }); print(srv.url); uv.run()
function M.start (opts)
  opts = opts or {}
  local srv, err = server.start(opts)
  if not srv then return nil, err end
  if opts.port_file then
    local tmp = opts.port_file .. ".tmp." .. uv.os_getpid()
    local f = assert(io.open(tmp, "w"))
    f:write(srv.port, "\n")
    f:close()
    assert(os.rename(tmp, opts.port_file))
  end
  if opts.announce ~= false then
    io.stdout:write("aigc devserver listening on ", srv.url, "\n")
    io.stdout:flush()
  end
  return srv
end

--- Run a server until SIGINT/SIGTERM (or --parent-pid / --exit-after) stops it.
-- Takes the options of `start`; blocks while serving.
-- @tparam[opt] table opts
-- @treturn boolean true once stopped cleanly (raises if it cannot listen)
-- @usage require("aigc.devserver").run{ port = 8089, pause_ms = 20 }
function M.run (opts)
  local srv = assert(M.start(opts))
  srv.owns_loop = true
  for _, name in ipairs { "sigint", "sigterm" } do
    local sig = uv.new_signal()
    srv.handles[#srv.handles + 1] = sig
    sig:start(name, function () srv.close() end)
  end
  local pipe = uv.new_signal() -- a client gone mid-write must not kill us with SIGPIPE
  srv.handles[#srv.handles + 1] = pipe
  pipe:start("sigpipe", function () end)
  uv.run("default")
  return true
end

local USAGE = [==[
usage: lua5.4 lua/aigc/devserver.lua [--host 127.0.0.1] [--port 8089] [--port-file PATH]
         [--pause-ms N] [--api-key-file PATH | --api-key KEY] [--quiet] [--parent-pid PID]
         [--exit-after SECONDS] [--idle-timeout SECONDS] [--tokenizer words|words2]
         [--rate-limit RPM[,TPM]] [--batch-delay-ms N]
]==]

local OPTIONS = { ["--host"] = "host", ["--port"] = "port", ["--port-file"] = "port_file",
  ["--pause-ms"] = "pause_ms", ["--api-key"] = "api_key", ["--parent-pid"] = "parent_pid",
  ["--exit-after"] = "exit_after", ["--idle-timeout"] = "idle_timeout", ["--tokenizer"] = "tokenizer",
  ["--rate-limit"] = "rate_limit", ["--batch-delay-ms"] = "batch_delay_ms", ["--api-key-file"] = "api_key_file" }
local NUMERIC = { port = true, pause_ms = true, parent_pid = true, exit_after = true, idle_timeout = true,
                  batch_delay_ms = true }
local CHOICES = { tokenizer = { words = true, words2 = true } }
local PATTERNS = { rate_limit = "^[1-9]%d*,?%d*$" }

-- The key of --api-key-file PATH (a key on the command line is in every
-- `ps`), or nil and a message (never the file's text).
local function key_of_file (path)
  local f, why = io.open(path, "rb")
  if not f then return nil, "cannot read --api-key-file: " .. tostring(why) end
  local text = f:read("*a") or ""
  f:close()
  local key = require("aigc.devserver.util").trim(text)   -- (loops: "^%s*(.-)%s*$" was quadratic in spaces)
  if key == "" then return nil, "--api-key-file " .. path .. ": no key in it" end
  if key:find("[%c ]") then return nil, "--api-key-file " .. path .. ": one key on one line expected" end
  return key
end

--- Parse command-line arguments into `run` options.
-- @tparam table argv the script's arguments
-- @treturn table options, or nil and a message
-- @usage local opts = assert(require("aigc.devserver").parse_args{ "--port", "0" })
function M.parse_args (argv)
  local opts, i = {}, 1
  while argv[i] do
    local a = argv[i]
    local k, v = match(a, "^(%-%-[%w%-]+)=(.*)$")
    k = k or a
    local key = OPTIONS[k]
    if k == "--quiet" then opts.quiet = true
    elseif k == "--help" or k == "-h" then return nil, USAGE
    elseif key then
      if v == nil then i = i + 1; v = argv[i] end
      if v == nil then return nil, "missing value for " .. k .. "\n" .. USAGE end
      if NUMERIC[key] then
        v = tonumber(v)
        if not v then return nil, "invalid number for " .. k .. "\n" .. USAGE end
      elseif (CHOICES[key] and not CHOICES[key][v]) or (PATTERNS[key] and not match(v, PATTERNS[key])) then
        return nil, "invalid value for " .. k .. ": " .. v .. "\n" .. USAGE
      end
      opts[key] = v
    else
      return nil, "unknown argument " .. a .. "\n" .. USAGE
    end
    i = i + 1
  end
  if opts.api_key_file then
    if opts.api_key then return nil, "--api-key and --api-key-file: give one\n" .. USAGE end
    local key, err = key_of_file(opts.api_key_file)
    if not key then return nil, err .. "\n" end
    opts.api_key, opts.api_key_file = key, nil
  end
  return opts
end

local function main (argv)
  local opts, err = M.parse_args(argv or {})
  if not opts then
    io.stderr:write(err)
    os.exit(err == USAGE and 0 or 2)
  end
  local ok, e = pcall(M.run, opts)
  if not ok then
    io.stderr:write("aigc devserver: ", tostring(e), "\n")
    os.exit(1)
  end
  os.exit(0)
end

if not pcall(debug.getlocal, 4, 1) then main(arg) end

return M
