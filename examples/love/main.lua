-- The Tipsy Kernel: a LÖVE 11 tavern whose NPCs talk through aigc.
--
--   make love                      (the bundled server, started for you)
--   OPENAI_API_KEY=... make love   (a real endpoint; AIGC_MODEL picks the model)
--   examples/love/run.sh           (what `make love` runs)
--
-- Type to talk (Tab: to whom, Enter: say it, Esc: quit). Borin and Lyra
-- chatter by themselves, Old Tom rambles and walks out mid-story (his request
-- is canceled), Captain Mara's quest is the best of three lines a judge picked.
--
-- The frame loop's contract: love.update calls client:step(0) once per
-- frame. step(0) never blocks: it moves every transfer along, runs the
-- callbacks whose data arrived (the bubbles' sentences) and returns. No
-- blocking call anywhere (the quest's best_of runs in a task, which yields).
--
-- AIGC_LOVE_TEST=frames:N,report:PATH,shot:PATH plays a scripted session
-- instead (script.lua), writes a JSON report and a screenshot, and quits.
-- luacheck: globals love

-- Where aigc comes from: the LuaJIT build of this checkout (make
-- LUA_VERSION=jit -> build/jit/aigc/core.so) and its lua/ folder, or a
-- shipped game's own copies: aigc/*.lua inside the game (LÖVE's require
-- finds them there) and aigc/core.so next to the game's executable.
local function find_aigc ()
  local source = love.filesystem.getSource()             -- this folder (examples/love)
  local root = os.getenv("AIGC_ROOT") or (source .. "/../..")
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
  package.cpath = root .. "/build/jit/?.so;" .. love.filesystem.getSourceBaseDirectory() .. "/?.so;"
                  .. package.cpath
end
find_aigc()

local aigc = require "aigc"
local Tavern = require "tavern"
local script = require "script"

local FRAME = 1 / 60
local game = {}

-- The CPU time of this thread (LuaJIT's ffi, clock_gettime's
-- CLOCK_THREAD_CPUTIME_ID): what aigc costs the frame, without the time the
-- OS gave other processes meanwhile (wall time is measured too).
local thread_cpu = (function ()
  local ok, ffi = pcall(require, "ffi")
  if not ok then return os.clock end
  pcall(ffi.cdef, "struct aigc_timespec { long tv_sec; long tv_nsec; };"
                  .. "int clock_gettime(int clock, struct aigc_timespec *ts);")
  local ts = ffi.new("struct aigc_timespec")
  return function ()
    ffi.C.clock_gettime(3, ts)             -- CLOCK_THREAD_CPUTIME_ID (Linux)
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
  end
end)()

local function percentile (list, p)
  if #list == 0 then return 0 end
  local sorted = {}
  for i, v in ipairs(list) do sorted[i] = v end
  table.sort(sorted)
  return sorted[math.max(1, math.ceil(#sorted * p))]
end
game.percentile = percentile

function love.load ()
  love.keyboard.setKeyRepeat(true)
  -- max_starts_per_step: a frame starts at most 8 requests (each costs its
  -- connection and its send in the step), however many NPCs speak at once;
  -- max_bytes_per_step: a frame reads at most ~64 KiB of replies (a dialogue
  -- needs a few), however much a broken server sends; max_response_bytes:
  -- 1 MiB holds any NPC's reply and bounds what one reply can cost
  game.client = aigc.client { model = os.getenv("AIGC_MODEL") or "gpt-4o-mini", max_retries = 1,
                              timeout = 60, max_starts_per_step = 8, max_bytes_per_step = 65536,
                              max_response_bytes = 1024 * 1024 }
  game.stats = {}
  game.tavern = Tavern.new(game.client, game.stats)
  game.talkable = { "greta", "mara", "borin", "lyra" }
  game.target, game.input, game.note = 1, "", ""
  game.step_ms, game.step_cpu_ms, game.frame_ms = {}, {}, {}
  game.font = love.graphics.newFont(14)
  game.small = love.graphics.newFont(12)
  game.test = script.parse(os.getenv("AIGC_LOVE_TEST"))
  if game.test then
    script.start(game)
  else
    game.tavern:chatter()
    game.tavern:quest()
    game.tavern:tom_rambles()
  end
  game.frame_start = love.timer.getTime()
end

-- The player says `line` to the NPC targeted.
function game.say (line)
  local id = game.talkable[game.target]
  local npc = game.tavern.npcs[id]
  if line:find("^%s*$") then return end
  if id == "mara" then
    if npc.thinking then game.note = npc.name .. " is thinking." return end
    game.tavern:quest(line)
  else
    game.tavern:ask(npc, line, "player")   -- (interrupts what the NPC was saying)
  end
  game.player_line, game.note = line, ""
end

function love.textinput (text)
  game.input = game.input .. text
end

function love.keypressed (key)
  if key == "escape" then love.event.quit()
  elseif key == "tab" then game.target = game.target % #game.talkable + 1
  elseif key == "backspace" then game.input = game.input:gsub("[%z\1-\127\194-\244][\128-\191]*$", "")
  elseif key == "return" or key == "kpenter" then
    game.say(game.input)
    game.input = ""
  end
end

function love.update (dt)
  local t0, c0 = aigc.now(), thread_cpu()
  game.client:step(0)                 -- the one aigc call of the frame: never blocks
  game.step_cpu_ms[#game.step_cpu_ms + 1] = (thread_cpu() - c0) * 1000
  game.step_ms[#game.step_ms + 1] = (aigc.now() - t0) * 1000
  game.tavern:update(dt)
  if game.test then script.update(game) end
  if not game.test then
    local tavern = game.tavern
    if tavern.chatter_done == tavern.chatter_turn and tavern.time - (tavern.npcs.lyra.said_at or 0) > 4 then
      tavern:chatter()                -- the next round of chatter, a while after the last
    end
    local tom = tavern.npcs.tom
    if (tom.spoken or 0) >= 2 and not tom.leaving then tavern:tom_leaves() end   -- mid-story
  end
  -- A frame cap (60 fps) where vsync does not pace the loop (xvfb): idle, not spin.
  local now = love.timer.getTime()
  local spare = FRAME - (now - game.frame_start)
  if spare > 0 then love.timer.sleep(spare) end
  now = love.timer.getTime()
  game.frame_ms[#game.frame_ms + 1] = (now - game.frame_start) * 1000
  game.frame_start = now
end

-- A speech bubble above an NPC: its last sentences, "..." while it thinks.
local function bubble (npc)
  local text = table.concat(npc.bubble, " ")
  if npc.thinking and #npc.pending == 0 then text = (text == "" and "" or text .. " ") .. "..." end
  if text == "" or npc.gone then return end
  local w = 230
  local _, lines = game.small:getWrap(text, w - 16)
  local h = #lines * game.small:getHeight() + 12
  local x, y = math.min(math.max(npc.x - w / 2, 4), 960 - w - 4), npc.y - 36 - h
  love.graphics.setColor(1, 1, 0.94)
  love.graphics.rectangle("fill", x, y, w, h, 8, 8)
  love.graphics.polygon("fill", npc.x - 8, y + h, npc.x + 8, y + h, npc.x, y + h + 10)
  love.graphics.setColor(0.12, 0.1, 0.1)
  love.graphics.setFont(game.small)
  love.graphics.printf(text, x + 8, y + 6, w - 16)
end

local function draw_room ()
  love.graphics.clear(0.23, 0.16, 0.11)
  love.graphics.setColor(0.32, 0.22, 0.14)
  for y = 0, 540, 36 do love.graphics.rectangle("fill", 0, y, 960, 32) end   -- floor planks
  love.graphics.setColor(0.45, 0.28, 0.15)
  love.graphics.rectangle("fill", 60, 220, 300, 40, 6, 6)                     -- the bar
  for _, tx in ipairs { 600, 380 } do love.graphics.circle("fill", tx, 350 + (tx == 380 and 90 or 0), 34) end
  love.graphics.setColor(0.15, 0.1, 0.07)
  love.graphics.rectangle("fill", Tavern.DOOR.x - 14, Tavern.DOOR.y - 60, 30, 90)  -- the door
  love.graphics.setColor(0.95, 0.8, 0.4)
  love.graphics.setFont(game.font)
  love.graphics.print("THE TIPSY KERNEL", 380, 8)
end

local function draw_npc (npc, targeted)
  if npc.gone then return end
  love.graphics.setColor(npc.color)
  love.graphics.circle("fill", npc.x, npc.y, 18)
  love.graphics.setColor(targeted and { 1, 1, 0.3 } or { 0.1, 0.08, 0.06 })
  love.graphics.setLineWidth(targeted and 3 or 2)
  love.graphics.circle("line", npc.x, npc.y, 18)
  love.graphics.setColor(1, 1, 1)
  love.graphics.setFont(game.small)
  love.graphics.printf(npc.name, npc.x - 60, npc.y + 22, 120, "center")
end

local function draw_hud ()
  local target = game.tavern.npcs[game.talkable[game.target]]
  love.graphics.setColor(0, 0, 0, 0.7)
  love.graphics.rectangle("fill", 0, 500, 960, 40)
  love.graphics.setColor(1, 1, 1)
  love.graphics.setFont(game.font)
  love.graphics.print(("You -> %s: %s_   %s"):format(target.name, game.input, game.note), 12, 510)
  love.graphics.setFont(game.small)
  local cpu = game.step_cpu_ms
  love.graphics.print(("%d fps   client:step(0) CPU %.2f ms (max %.2f)   requests %d   sentences %d   cancels %d")
    :format(love.timer.getFPS(), cpu[#cpu] or 0, percentile(cpu, 1), game.client:active(),
            game.stats.sentences, game.stats.cancels), 12, 30)
end

-- The player stands by the bar, with the last line they said.
local PLAYER = { name = "You", x = 240, y = 330, color = { 0.3, 0.6, 0.9 }, bubble = {}, pending = {} }

function love.draw ()
  draw_room()
  local target = game.talkable[game.target]
  PLAYER.bubble[1] = game.player_line
  draw_npc(PLAYER, false)
  for _, npc in ipairs(game.tavern.order) do draw_npc(npc, npc.id == target) end
  bubble(PLAYER)
  for _, npc in ipairs(game.tavern.order) do bubble(npc) end
  draw_hud()
end

function love.quit ()
  game.client:close()
end
