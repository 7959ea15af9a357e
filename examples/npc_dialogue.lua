-- NPCs that remember and decide: one conversation per NPC, each reply a
-- structured decision { say =, action =, mood = } validated against a JSON
-- schema, so the game can act on it. All NPCs think at once inside a
-- 60 fps frame loop (say_async + client:step(0), which never blocks).
--
--   lua5.4 examples/npc_dialogue.lua       (OPENAI_BASE_URL: e.g. the bundled server)
local aigc = require "aigc"

local FRAME = 1 / 60
local client = aigc.client { model = os.getenv("AIGC_MODEL") or "gpt-4o-mini" }

local DECISION = {
  type = "object",
  properties = {
    say = { type = "string", description = "What the NPC says, one or two sentences." },
    action = { type = "string", enum = { "wave", "trade", "attack", "flee", "give_quest", "ignore" } },
    mood = { type = "string", enum = { "cheerful", "calm", "suspicious", "angry", "afraid" } },
  },
  required = { "say", "action", "mood" },
  additionalProperties = false,
}

local npcs = {
  { name = "Brom the Guard", seed = 7,
    persona = "You are Brom, a gruff town guard. You distrust strangers and protect the gate." },
  { name = "Lia the Merchant", seed = 3,
    persona = "You are Lia, a cheerful travelling merchant who loves a good bargain." },
  { name = "Old Tam", seed = 12,
    persona = "You are Old Tam, the innkeeper. You know every rumour in the valley and hand out quests." },
}
for _, npc in ipairs(npcs) do
  npc.conv = aigc.conversation {
    client = client,
    system = npc.persona .. " Decide what you do next in the game: what you say, your action and your mood.",
    params = { schema = DECISION, schema_name = "npc_decision", seed = npc.seed, temperature = 0.9 },
    max_context_tokens = 1500, keep_last = 6,
  }
end

-- What the player does, scene by scene (one line per NPC).
local SCENES = {
  { "Hello! I come in peace.", "Hello! What are you selling? I'd like to trade.",
    "Good evening! Any rooms free?" },
  { "Stand aside, old man, or I attack!", "Would you trade a map for this silver ring?",
    "Heard any rumours? Please give quest work to a poor traveller." },
  { "Easy! I'm leaving. A friendly wave, and I'm gone.", "Thank you, pleasure doing business!",
    "Thanks, I'll set off at dawn." },
}

local ICON = { wave = "👋", trade = "💰", attack = "⚔️ ", flee = "🏃", give_quest = "📜", ignore = "🤷" }

local frames, busy_frames = 0, 0
for s, lines in ipairs(SCENES) do
  print(("\n== Scene %d =="):format(s))
  for i, npc in ipairs(npcs) do
    npc.line = lines[i]
    npc.request = npc.conv:say_async(lines[i])   -- all three think at once
  end
  -- The game loop: a frame every 1/60 s; step(0) never waits for the network.
  local pending = #npcs
  while pending > 0 do
    local t0 = aigc.now()
    client:step(0)
    frames = frames + 1
    pending = 0
    for _, npc in ipairs(npcs) do
      local st = npc.request:status()
      if st == "running" or st == "queued" then pending = pending + 1 end
    end
    if pending > 0 then busy_frames = busy_frames + 1 end
    -- ... move sprites, render ...
    local spare = FRAME - (aigc.now() - t0)
    if spare > 0 then aigc.sleep(spare) end
  end
  for _, npc in ipairs(npcs) do
    local res, err = npc.request:result()
    print(("you -> %s: %s"):format(npc.name, npc.line))
    if res then
      local d = res.parsed
      print(("  %s %s [%s, %s]: %s"):format(ICON[d.action] or "", npc.name, d.action, d.mood, d.say))
    else
      print("  (" .. npc.name .. " is lost in thought: " .. tostring(err) .. ")")
    end
  end
end

print(("\n%d frames; the NPCs were thinking during %d of them, and the game never waited."):format(
  frames, busy_frames))
for _, npc in ipairs(npcs) do
  print(("%s remembers %d messages (~%d tokens)."):format(npc.name, #npc.conv.messages, npc.conv:tokens()))
end
client:close()
