-- The test mode of the tavern: AIGC_LOVE_TEST=frames:N,report:PATH,shot:PATH
-- plays a scripted session in the real engine, then writes a screenshot
-- (PNG) and a JSON report and quits (spec/love_spec.lua runs it under
-- xvfb-run and checks both).
--
-- The session: three rounds of background chatter, Captain Mara's best-of
-- quest, Old Tom's story canceled when he walks out after his first
-- sentence, the player typing two lines to Greta (through love.textinput
-- and the Enter key, as a player would) and interrupting Borin's story
-- (chatter 2) with a question: that story is canceled, the question answered. It runs at least N
-- frames, and on until every scripted reply has arrived (at most 4 N frames).
-- The screenshot is of the last frame, or of frame K with shot_frame:K.
--
-- The report: frames, seconds, frame_ms, step_ms and step_cpu_ms (median,
-- p99, max: the whole frame, the wall time inside client:step(0), and the
-- thread's CPU time inside it), replies, expected (each
-- scripted reply and whether it arrived), cancels, sentences, quest
-- (the judge's choice), errors, error (a Lua error that ended the run).
-- luacheck: globals love
local aigc = require "aigc"

local M = {}

local PLAYER_LINES = { "Hello! Who are you?", "Tell me a joke" }
local EXPECTED = {
  { who = "lyra", what = "chatter 1" }, { who = "borin", what = "player" },
  { who = "lyra", what = "chatter 3" }, { who = "mara", what = "quest" },
  { who = "greta", what = "player", n = 1 }, { who = "greta", what = "player", n = 2 },
}
-- (chatter 2, Borin's story, is interrupted by the player: a cancel)
local INTERRUPT = "What is 2 + 2?"

--- The test mode's settings from the variable's text, or nil when it is not set.
function M.parse (text)
  if text == nil or text == "" then return nil end
  local t = { frames = 600 }
  for key, value in text:gmatch("([%w_]+):([^,]+)") do
    t[key] = key == "frames" and assert(tonumber(value), "AIGC_LOVE_TEST: frames:N") or value
  end
  return t
end

-- Which scripted replies arrived (heard in order: the player's n-th line to Greta is the n-th "player").
local function expected (stats)
  local out, count = {}, {}
  for _, h in ipairs(stats.heard) do
    local key = h.who .. "/" .. h.what
    count[key] = (count[key] or 0) + 1
  end
  local all = true
  for _, e in ipairs(EXPECTED) do
    local arrived = (count[e.who .. "/" .. e.what] or 0) >= (e.n or 1)
    out[#out + 1] = { who = e.who, what = e.what, arrived = arrived }
    all = all and arrived
  end
  return out, all
end

local function summary (list)
  local p = M.game.percentile
  return { median = p(list, 0.5), p99 = p(list, 0.99), max = p(list, 1) }
end

local function write_report (game, extra)
  local list, all = expected(game.stats)
  local report = {
    frames = game.frame, seconds = love.timer.getTime() - game.started,
    frame_ms = summary(game.frame_ms), step_ms = summary(game.step_ms),
    step_cpu_ms = summary(game.step_cpu_ms),
    replies = game.stats.replies, expected = list, all_arrived = all,
    cancels = game.stats.cancels, sentences = game.stats.sentences, quest = game.stats.quest,
    errors = game.stats.errors, screenshot = game.test.shot,
  }
  for k, v in pairs(extra or {}) do report[k] = v end
  if game.test.report then
    local f = assert(io.open(game.test.report, "w"))
    f:write(aigc.json.encode(report), "\n")
    f:close()
  end
  return report
end

--- Starts the scripted session (called from love.load).
function M.start (game)
  M.game = game
  game.frame, game.started, game.typed = 0, love.timer.getTime(), 0
  game.plan = { line = 1, char = 0, next_line_at = 20, chatter_at = 1 }
  -- A Lua error must end the run with a report, not wait on LÖVE's error screen.
  love.errorhandler = function (msg)
    local tb = debug.traceback(tostring(msg), 2)
    pcall(write_report, game, { error = tb })
    io.stderr:write("tavern test: ", tb, "\n")
    os.exit(1)
  end
end

-- The player types the current line, one character a frame, then Enter.
local function type_lines (game)
  local plan = game.plan
  local line = PLAYER_LINES[plan.line]
  if not line or game.frame < plan.next_line_at then return end
  if plan.char < #line then
    plan.char = plan.char + 1
    love.textinput(line:sub(plan.char, plan.char))
  else
    love.keypressed("return")
    plan.line, plan.char, plan.next_line_at = plan.line + 1, 0, math.huge
    plan.waiting_for_greta = true
  end
end

local function events (game)
  local tavern, plan, f = game.tavern, game.plan, game.frame
  if f == 5 then tavern:quest() end
  if f == 10 then tavern:tom_rambles() end
  local tom = tavern.npcs.tom
  if not tom.leaving and ((tom.spoken or 0) >= 1 or f == 240) then tavern:tom_leaves() end
  if plan.waiting_for_greta and not tavern.npcs.greta.req then
    plan.waiting_for_greta, plan.next_line_at = false, f + 30
  end
  -- The player interrupts Borin's story (chatter 2) once it has begun.
  local borin = tavern.npcs.borin
  if tavern.chatter_turn == 2 and borin.req and #borin.bubble > 0 and not plan.interrupted then
    plan.interrupted = true
    local target = game.target
    game.target = 3                                   -- Borin (Tab twice)
    game.say(INTERRUPT)
    game.target = target
  end
  if tavern.chatter_turn < 3 and f >= plan.chatter_at and tavern:chatter() then
    plan.chatter_at = math.huge
  elseif plan.chatter_at == math.huge and tavern.chatter_done == tavern.chatter_turn then
    plan.chatter_at = f + 20
  end
end

local function finish (game)
  game.finishing = true
  love.graphics.captureScreenshot(function (image)
    if game.test.shot then
      local f = assert(io.open(game.test.shot, "wb"))
      f:write(image:encode("png"):getString())
      f:close()
    end
    game.shot_taken = true
  end)
end

--- One frame of the script (called from love.update, after client:step(0)).
function M.update (game)
  game.frame = game.frame + 1
  if game.frame == tonumber(game.test.shot_frame) and game.test.shot then
    local path = game.test.shot
    love.graphics.captureScreenshot(function (image)      -- a shot mid-session (the README's)
      local f = assert(io.open(path, "wb"))
      f:write(image:encode("png"):getString())
      f:close()
    end)
    game.test.shot = nil                                   -- (not again at the end)
  end
  if game.shot_taken then
    write_report(game)
    love.event.quit(0)
    return
  end
  if game.finishing then return end
  type_lines(game)
  events(game)
  local _, all = expected(game.stats)
  local done = all and game.stats.cancels >= 2 and game.client:active() == 0
  if (game.frame >= game.test.frames and done) or game.frame >= 4 * game.test.frames then
    finish(game)
  end
end

return M
