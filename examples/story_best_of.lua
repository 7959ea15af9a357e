-- Generate, evaluate, select: four stories written at once (one request
-- each, different seeds), an LLM judge reads them all and picks one.
--
--   lua5.4 examples/story_best_of.lua      (OPENAI_BASE_URL: e.g. the bundled server)
local aigc = require "aigc"

local client = aigc.client { model = os.getenv("AIGC_MODEL") or "gpt-4o-mini" }
local PROMPT = "Tell me a short story about a robot that learns to paint."

local function words (s) return select(2, s:gsub("%S+", "")) end

-- The first sentence, its middle elided when long: openings often differ at the end.
local function first_sentence (s)
  local one = (s:match("^(.-[%.!?])%s") or s):gsub("%s+", " ")
  if #one > 80 then one = one:sub(1, 32):gsub("%s*%S*$", "") .. " ... " .. one:sub(-44):gsub("^%S*%s*", "") end
  return one
end

print("Generate: 4 stories at once for \"" .. PROMPT .. "\"")
local t0 = aigc.now()
local best, candidates = aigc.strategy.best_of {
  client = client,
  n = 4,
  params = { messages = { { role = "user", content = PROMPT } }, temperature = 1.0, max_tokens = 400 },
  judge = { prompt = "You are the editor of a children's magazine. Pick the story that is the most vivid, "
                     .. "warm and complete." },
}
if not best then
  io.stderr:write("best_of failed: ", tostring(candidates), "\n")
  os.exit(1)
end
local elapsed = aigc.now() - t0

print("\nEvaluate: the judge read these candidates")
for _, c in ipairs(candidates) do
  if c.err then
    print(("  #%d  (failed: %s)"):format(c.index, tostring(c.err)))
  else
    print(("  #%d  %3d words  %s%s"):format(c.index, words(c.text), first_sentence(c.text),
                                           c == best and "   <- chosen" or ""))
  end
end
if candidates.judge then   -- (none when a single story was left to judge)
  print(("  the judge answered: %q"):format(candidates.judge.text))
end

print(("\nSelect: story #%d\n"):format(best.index))
-- Wrap the winner at 78 columns for the terminal.
local line = ""
for word in best.text:gmatch("%S+") do
  if #line + #word + 1 > 78 then print("  " .. line); line = word
  else line = line == "" and word or (line .. " " .. word) end
end
if line ~= "" then print("  " .. line) end

local tokens = 0
for _, c in ipairs(candidates) do
  if c.res and c.res.usage then tokens = tokens + c.res.usage.total_tokens end
end
print(("\n(4 candidates and a verdict in %.3f s; %d tokens for the candidates)"):format(elapsed, tokens))
client:close()
