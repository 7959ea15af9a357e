-- The tavern: its NPCs, what they say and how it reaches their speech
-- bubbles. Everything here is non-blocking: requests are started with
-- `say_async` (or run in a task, `client:spawn`) and advance only when
-- main.lua calls `client:step(0)` once per frame.
--
--   * each NPC has its own conversation (aigc.conversation) and personality;
--   * replies stream in and reach the bubble sentence by sentence
--     (aigc.sentences.stream: a stream callback that gives whole sentences);
--   * Borin and Lyra chatter in the background, taking turns;
--   * Old Tom starts a long story, then walks out: leaving cancels his request;
--   * Captain Mara's quest line is the best of three candidates, picked by a
--     judge (aigc.strategy.best_of), inside a task so it never blocks a frame.
local aigc = require "aigc"
local sentences = require "aigc.sentences"

local M = {}

local MAX_TOKENS = 80

-- The NPCs: where they stand, their colour and who they are.
local CAST = {
  { id = "greta", name = "Greta", x = 200, y = 180, color = { 0.85, 0.45, 0.35 },
    system = "You are Greta, the warm, gossiping innkeeper of the Tipsy Kernel tavern. "
             .. "Answer in two or three short sentences." },
  { id = "borin", name = "Borin", x = 470, y = 300, color = { 0.55, 0.55, 0.7 },
    system = "You are Borin, a grumpy dwarf blacksmith who loves a good joke. Two sentences at most." },
  { id = "lyra", name = "Lyra", x = 740, y = 300, color = { 0.4, 0.75, 0.45 },
    system = "You are Lyra, a cheerful bard who rhymes when she can. Two sentences at most." },
  { id = "tom", name = "Old Tom", x = 380, y = 400, color = { 0.75, 0.7, 0.4 },
    system = "You are Old Tom, a rambling old sailor who tells very long stories." },
  { id = "mara", name = "Captain Mara", x = 820, y = 150, color = { 0.8, 0.35, 0.6 },
    system = "You are Captain Mara of the city watch. You give adventurers quests, in one or two sentences." },
}

-- What the chatterers ask each other, in turn.
local CHATTER = {
  { asker = "borin", answerer = "lyra", line = "Tell me a joke" },
  { asker = "lyra", answerer = "borin", line = "Tell me your story about a robot that learns to paint." },
  { asker = "borin", answerer = "lyra", line = "What is the weather like today?" },
}

local DOOR = { x = 930, y = 420 }

-- A new tavern on `client`; `stats` (optional) counts what happens, for the test mode's report.
function M.new (client, stats)
  local t = { client = client, npcs = {}, order = {}, stats = stats or {}, chatter_turn = 0, time = 0 }
  t.stats.replies, t.stats.cancels, t.stats.sentences = 0, 0, 0
  t.stats.errors, t.stats.heard = {}, {}
  for _, c in ipairs(CAST) do
    local npc = { id = c.id, name = c.name, x = c.x, y = c.y, home_x = c.x, color = c.color,
                  bubble = {}, pending = {}, reveal_at = 0,
                  conv = aigc.conversation { client = client, system = c.system,
                                             params = { max_tokens = MAX_TOKENS } } }
    t.npcs[c.id] = npc
    t.order[#t.order + 1] = npc
  end
  return setmetatable(t, { __index = M })
end

-- A sentence for `npc`'s bubble (the bubble keeps the last two).
local function show (t, npc, s)
  npc.bubble[#npc.bubble + 1] = s
  if #npc.bubble > 2 then table.remove(npc.bubble, 1) end
  npc.said_at, npc.spoken = t.time, (npc.spoken or 0) + 1
  t.stats.sentences = t.stats.sentences + 1
end

-- The callbacks of one reply of `npc` (`what` names it in the stats);
-- on_end(text or nil) when it is over, whichever way.
local function reply_params (t, npc, what, on_end)
  return sentences.stream({
    on_done = function (reply)
      npc.req, npc.thinking = nil, false
      t.stats.replies = t.stats.replies + 1
      t.stats.heard[#t.stats.heard + 1] = { who = npc.id, what = what, text = reply.text }
      if on_end then on_end(reply.text) end
    end,
    on_error = function (err)
      npc.req, npc.thinking = nil, false
      if err.kind == "canceled" then
        t.stats.cancels = t.stats.cancels + 1
      else
        t.stats.errors[#t.stats.errors + 1] = npc.id .. ": " .. tostring(err)
        show(t, npc, "(" .. err.kind .. " error)")
      end
      if on_end then on_end(nil) end
    end,
  }, function (s) show(t, npc, s) end)
end

--- `npc` answers `line` (from the player or another NPC): streamed, sentence by sentence.
-- An NPC still answering something else drops it (the player interrupts
-- the chatter); the new line starts once the canceled say has ended (a
-- conversation holds one say at a time; the cancel ends it at the next
-- client:step, and `update` starts the line then).
function M:ask (npc, line, what, on_end, max_tokens)
  if npc.req then
    npc.req:cancel()
    npc.queued = { line, what, on_end, max_tokens }
    return
  end
  npc.bubble, npc.thinking = {}, true
  local params = reply_params(self, npc, what or "reply", on_end)
  params.max_tokens = max_tokens
  npc.req = npc.conv:say_async(line, params)
  return npc.req
end

--- The next round of background chatter (the asker's line at once, the
-- answer streamed); false (nothing starts) while either of them is busy:
-- the chatter never interrupts the player's conversations.
function M:chatter ()
  local round = CHATTER[self.chatter_turn % #CHATTER + 1]
  local asker, answerer = self.npcs[round.asker], self.npcs[round.answerer]
  if asker.req or answerer.req or asker.queued or answerer.queued then return false end
  self.chatter_turn = self.chatter_turn + 1
  asker.bubble = { round.line .. (round.line:find("[%.!?]$") and "" or "!") }
  asker.said_at = self.time
  self:ask(answerer, round.line, "chatter " .. self.chatter_turn, function ()
    self.chatter_done = self.chatter_turn           -- (answered or interrupted)
  end)
  return true
end

--- Old Tom starts his story (he will walk out in the middle of it).
function M:tom_rambles ()
  local tom = self.npcs.tom
  self:ask(tom, "Generate a short story about a robot that learns to paint.", "story", nil, 400)
end

--- Old Tom walks to the door; when he gets there he is gone, and his story with him.
function M:tom_leaves ()
  self.npcs.tom.leaving = true
end

--- Captain Mara's quest: three candidate lines, a judge picks one (in a task:
-- the task yields to the frame loop while the requests run).
function M:quest (line)
  local mara = self.npcs.mara
  mara.bubble, mara.thinking = {}, true
  self.client:spawn(function ()
    local best, cands = aigc.strategy.best_of {
      client = self.client, n = 3,
      params = { messages = { { role = "system", content = CAST[5].system },
                              { role = "user", content = line or "Give the adventurer a quest." } },
                 max_tokens = MAX_TOKENS, temperature = 1.0 },
      judge = { prompt = "Which quest is the most exciting for a young adventurer?" },
    }
    mara.thinking = false
    if not best then
      self.stats.errors[#self.stats.errors + 1] = "mara: " .. tostring(cands)
      show(self, mara, "(no quest today)")
      return
    end
    self.stats.quest = { chosen = best.index, candidates = #cands }
    self.stats.replies = self.stats.replies + 1
    self.stats.heard[#self.stats.heard + 1] = { who = "mara", what = "quest", text = best.text }
    -- The line came whole: reveal it a sentence at a time, as the others' stream in.
    for _, s in ipairs(sentences.split(best.text)) do mara.pending[#mara.pending + 1] = s end
  end)
end

-- Moves Old Tom toward the door; cancels his request when he is out.
local function walk (npc, dt)
  if not npc.leaving or npc.gone then return end
  local dx, dy = DOOR.x - npc.x, DOOR.y - npc.y
  local d = math.sqrt(dx * dx + dy * dy)
  local step = 320 * dt
  if d <= step then
    npc.gone = true
    if npc.req then npc.req:cancel() end           -- he is not here to finish it
    npc.bubble = {}
  else
    npc.x, npc.y = npc.x + dx / d * step, npc.y + dy / d * step
  end
end

--- Advances the tavern by dt seconds (no aigc call here but cancel: the
-- frame loop drives aigc with client:step(0)).
function M:update (dt)
  self.time = self.time + dt
  for _, npc in ipairs(self.order) do
    walk(npc, dt)
    local q = npc.queued
    if q and not npc.req then                      -- (the canceled say has ended)
      npc.queued = nil
      self:ask(npc, q[1], q[2], q[3], q[4])
    end
    if npc.pending[1] and self.time >= npc.reveal_at then
      show(self, npc, table.remove(npc.pending, 1))
      npc.reveal_at = self.time + 0.6
    end
  end
end

M.DOOR = DOOR

return M
