-- A simulated 60 fps game loop in which 8 NPCs talk at once. Each frame
-- calls client:step(0), which never blocks: replies stream into each NPC's
-- speech bubble a few words per frame. At the end it prints how long the
-- frames spent inside client:step(): the part aigc costs a frame.
--
--   lua5.4 examples/npc_loop.lua          (OPENAI_BASE_URL: e.g. the bundled server)
local aigc = require "aigc"

local FRAME = 1 / 60
local client = aigc.client { model = os.getenv("AIGC_MODEL") or "gpt-4o-mini" }

local npcs = {
  { name = "Blacksmith", line = "Tell me a joke" },
  { name = "Innkeeper", line = "Hello! Who are you?" },
  { name = "Guard", line = "What is the capital of France?" },
  { name = "Merchant", line = "Can I get a refund for my order?" },
  { name = "Farmer", line = "What is the weather like today?" },
  { name = "Scholar", line = "Generate a short story about a robot that learns to paint." },
  { name = "Bard", line = "How are you today?" },
  { name = "Child", line = "What is 2 + 2?" },
}

for _, npc in ipairs(npcs) do
  npc.bubble = {}
  npc.request = client:chat_async {
    messages = {
      { role = "system", content = "You are the " .. npc.name .. " in a village. Answer in one or two sentences." },
      { role = "user", content = npc.line },
    },
    max_tokens = 60,
    stream = function (delta) if delta then npc.bubble[#npc.bubble + 1] = delta end end,
    on_done = function () npc.done_frame = true end,
    on_error = function (err) npc.error = err end,
  }
end

local step_times, frames = {}, 0
local started = aigc.now()
while true do
  local frame_start = aigc.now()
  local t0 = aigc.now()
  local active = client:step(0)            -- never blocks
  step_times[#step_times + 1] = aigc.now() - t0
  frames = frames + 1
  -- ... the game would update and render here ...
  if active == 0 then break end
  if frames > 60 * 60 then error("the NPCs talked for a whole minute") end
  local spare = FRAME - (aigc.now() - frame_start)
  if spare > 0 then aigc.sleep(spare) end   -- idle until the next frame
end
local elapsed = aigc.now() - started

for _, npc in ipairs(npcs) do
  local said = table.concat(npc.bubble)
  if npc.error then said = "(error: " .. tostring(npc.error) .. ")" end
  print(("%-10s %s"):format(npc.name .. ":", said))
end

table.sort(step_times)
local function percentile (p)
  return step_times[math.max(1, math.ceil(#step_times * p))] * 1e6
end
print(("\n%d frames in %.2f s; time inside client:step() per frame: median %.0f us, p99 %.0f us, max %.0f us"
       .. " (the frame budget is %.0f us)"):format(frames, elapsed, percentile(0.5), percentile(0.99),
       step_times[#step_times] * 1e6, FRAME * 1e6))
client:close()
