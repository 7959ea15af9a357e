-- An NPC that speaks: its line comes from the chat model, then its voice
-- from the speech endpoint, in a 60 fps frame loop that never waits: the
-- audio arrives chunk by chunk (where a game would feed its audio device,
-- so playback starts before the clip is complete) and is also saved as a
-- WAV file.
--
--   lua5.4 examples/npc_voice.lua [out_dir]     (default: a temp folder)
--
-- Uses OPENAI_BASE_URL / OPENAI_API_KEY; AIGC_MODEL picks the chat model.
local aigc = require "aigc"

local out_dir = arg[1] or os.getenv("TMPDIR") or "/tmp"
local client = aigc.client { model = os.getenv("AIGC_MODEL") or "gpt-4o-mini" }
local FRAME = 1 / 60

-- Runs frames until `req` is over; returns how many frames it took.
local function frames_until_done (req)
  local frames = 0
  while req:status() == "queued" or req:status() == "running" do
    local t0 = aigc.now()
    client:step(0)            -- never blocks
    frames = frames + 1
    -- ... move sprites, render ...
    local spare = FRAME - (aigc.now() - t0)
    if spare > 0 then aigc.sleep(spare) end
  end
  return frames
end

local player = "Good evening! Any rooms free?"
print("you -> innkeeper: " .. player)
local think = client:chat_async { messages = {
  { role = "system", content = "You are Berta, a cheerful innkeeper. Answer in one short sentence." },
  { role = "user", content = player },
} }
frames_until_done(think)
local line = assert(think:result()).text
print("innkeeper: " .. line)

-- The voice: chunks to the "audio device" as they arrive.
local played, chunks, first_chunk_frame, frame_no = 0, 0, nil, 0
local speak = client:speech_async {
  input = line, model = "tts-1", voice = "coral", response_format = "pcm",
  to = function (chunk)
    chunks = chunks + 1
    played = played + #chunk   -- a game: audio_queue:push(chunk)
    first_chunk_frame = first_chunk_frame or frame_no
  end,
}
while speak:status() == "queued" or speak:status() == "running" do
  local t0 = aigc.now()
  frame_no = frame_no + 1
  client:step(0)
  local spare = FRAME - (aigc.now() - t0)
  if spare > 0 then aigc.sleep(spare) end
end
assert(speak:result())
print(("voice: %d bytes of 24 kHz PCM in %d chunks; playback could start at frame %d"):format(
  played, chunks, first_chunk_frame or 0))

-- The same line saved as a WAV file (written as it arrives, renamed into
-- place when complete: never a half-written file).
local path = out_dir .. "/innkeeper.wav"
local saved, err = client:speech { input = line, model = "tts-1", voice = "coral", response_format = "wav", to = path }
if not saved then error(tostring(err)) end
local f = assert(io.open(path, "rb"))
local header = f:read(4)
f:close()
print(("saved %s (%d bytes, %s)"):format(path, saved.bytes, header == "RIFF" and "a RIFF/WAVE file" or "?"))
client:close()
