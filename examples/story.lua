-- The second example of the document aigc grew from: a longer generation,
-- streamed to the terminal as it is written.
--   lua5.4 examples/story.lua
local aigc = require "aigc"

local client = aigc.client()
local res, err = client:complete {
  model = os.getenv("AIGC_COMPLETION_MODEL") or "gpt-3.5-turbo-instruct",
  prompt = "Generate a short story about a robot that learns to paint.",
  max_tokens = 150,
  n = 1,
  temperature = 0.8,
  stream = function (delta) io.write(delta or ""); io.flush() end,
}
print()
if not res then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
print(string.format("[%d tokens, finish_reason %s]", res.usage and res.usage.completion_tokens or 0,
                    tostring(res.choices[1].finish_reason)))
