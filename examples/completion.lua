-- The first example of the document aigc grew from: a one-shot completion.
--   lua5.4 examples/completion.lua
-- Uses OPENAI_BASE_URL / OPENAI_API_KEY (the bundled server: `make server`).
local aigc = require "aigc"

local client = aigc.client()
local res, err = client:complete {
  model = os.getenv("AIGC_COMPLETION_MODEL") or "gpt-3.5-turbo-instruct",
  prompt = "What is the capital of France?",
  max_tokens = 10,
  n = 1,
  stop = nil,
  temperature = 0.7,
}
if not res then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
print("Q: What is the capital of France?")
print("A:" .. res.choices[1].text)
