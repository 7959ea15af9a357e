-- A support bot for voice messages: each voice note is transcribed, the
-- text is moderated first (a pre-filter: flagged messages go to a human),
-- and only clean ones get an answer from the chat model.
--
--   lua5.4 examples/voice_support.lua
--
-- Uses OPENAI_BASE_URL / OPENAI_API_KEY; AIGC_MODEL picks the chat model.
-- The voice notes are made here with the speech endpoint, so the example
-- needs no audio files (with the bundled server the transcription gives the
-- spoken text back exactly).
local aigc = require "aigc"

local client = aigc.client { model = os.getenv("AIGC_MODEL") or "gpt-4o-mini" }

local CUSTOMERS = {
  "Hello, where is my order A-1042?",
  "This is useless, I will kill you if my parcel is late again",
  "Can I get a refund for a damaged item?",
}

-- A voice note (WAV bytes) saying `text`.
local function record_voice_note (text)
  return assert(client:speech { input = text, model = "tts-1", voice = "alloy", response_format = "wav" }).body
end

for i, said in ipairs(CUSTOMERS) do
  local note = record_voice_note(said)
  -- Upload the voice note from memory (a path works too: file = "note.wav").
  local heard = assert(client:transcribe { file = { data = note, filename = "note-" .. i .. ".wav" },
                                           model = "whisper-1" })
  print(("voice note %d (%d bytes): %q"):format(i, #note, heard.text))
  local check = assert(client:moderate { input = heard.text })
  if check.flagged then
    print("  -> flagged (" .. table.concat(check.flagged_categories, ", ") .. "): handed to a human agent")
  else
    local reply = assert(client:chat { messages = {
      { role = "system", content = "You are a friendly shop assistant. One sentence." },
      { role = "user", content = heard.text },
    } })
    print("  -> bot: " .. reply.text)
  end
end
client:close()
