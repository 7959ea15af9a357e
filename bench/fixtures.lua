-- The canned server's answers and what each client must find in them.
--
-- A chat.completion as OpenAI sends it (~600 bytes), and a stream of 200
-- chat.completion.chunk events (a role chunk, 198 content chunks, a
-- finish chunk) ending in "data: [DONE]". No '$' (nginx would read a
-- variable) and no backslash (the floor's scanner compares raw bytes).

local M = {}

M.content = "Hello! I am doing well, thank you for asking. How can I help you today? "
  .. "Just let me know what you need."

M.chat = table.concat {
  '{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion",',
  '"created":1741570283,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,',
  '"message":{"role":"assistant","content":"', M.content, '","refusal":null,',
  '"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{',
  '"prompt_tokens":28,"completion_tokens":52,"total_tokens":80,',
  '"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},',
  '"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}},',
  '"system_fingerprint":"fp_06737a9306"}',
}

local CHUNK_HEAD = '{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk",'
  .. '"created":1741569952,"model":"gpt-4o-mini-2024-07-18","service_tier":"default",'
  .. '"system_fingerprint":"fp_06737a9306","choices":[{"index":0,"delta":'

M.chunks = 200

-- 198 content pieces: the words of a text, each with its leading space.
local words = {}
local text = "Streaming lets a game show an answer while it is being written. "
  .. "Each piece of text arrives as a small event, and the client hands it to "
  .. "the script at once, so the first words appear after one round trip "
  .. "instead of after the whole reply. "
for w in text:gmatch("%S+") do words[#words + 1] = w end
local pieces = {}
for i = 1, M.chunks - 2 do
  pieces[i] = (i == 1 and "" or " ") .. words[(i - 1) % #words + 1]
end
M.stream_content = table.concat(pieces)

local events = {}
events[1] = 'data: ' .. CHUNK_HEAD .. '{"role":"assistant","content":"","refusal":null},'
  .. '"logprobs":null,"finish_reason":null}]}\n\n'
for i, p in ipairs(pieces) do
  events[#events + 1] = 'data: ' .. CHUNK_HEAD .. '{"content":"' .. p .. '"},'
    .. '"logprobs":null,"finish_reason":null}]}\n\n'
  assert(i)
end
events[#events + 1] = 'data: ' .. CHUNK_HEAD .. '{},"logprobs":null,"finish_reason":"stop"}]}\n\n'
events[#events + 1] = 'data: [DONE]\n\n'
M.stream = table.concat(events)
assert(#events == M.chunks + 1)

-- The same stream as OpenAI sends it today (2025-): every chunk also
-- carries "obfuscation", random padding (letters and digits, 1 to 15 of
-- them) that hides the size of the text; requested with include_usage
-- off, so no "usage" field. The content is the same as M.stream's. The
-- padding comes from a fixed linear congruential sequence: the same bytes
-- on every run.
local seed = 12345
local function padding ()
  local t = {}
  seed = (seed * 1103515245 + 12345) % 2147483648
  for i = 1, 1 + seed % 15 do
    seed = (seed * 1103515245 + 12345) % 2147483648
    local c = seed % 62
    t[i] = string.char(c < 10 and 48 + c or c < 36 and 55 + c or 61 + c)
  end
  return table.concat(t)
end
local real = {}
for i = 1, #events - 1 do
  real[i] = events[i]:gsub("}\n\n$", ',"obfuscation":"' .. padding() .. '"}\n\n')
end
real[#real + 1] = 'data: [DONE]\n\n'
M.stream_openai = table.concat(real)

assert(not (M.chat .. M.stream .. M.stream_openai):find("[%$\\']"))

return M
