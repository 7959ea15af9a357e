--- aigc devserver: the reply rules. Deterministic: the same model, messages,
-- seed, temperature and choice index give the same text. The rules (see the
-- devserver header, REPLIES) are checked in order: judge and classify
-- contracts, then echo, capitals, the robot story, arithmetic, then the
-- keyword replies of KEYWORD_REPLIES (data: words that trigger, 3 variants),
-- then a generic sentence quoting the message. Part of the devserver package.

local util = require "aigc.devserver.util"
local num = require("aigc.devserver.json").num

local byte, find, format, gsub, lower, match, sub = string.byte, string.find, string.format, string.gsub, string.lower,
  string.match, string.sub
local concat = table.concat
local fnv, words, trim, gmatch_lines, content_text, count_images = util.fnv, util.words, util.trim,
  util.gmatch_lines, util.content_text, util.count_images
local trim_end = util.trim_end

local M = {}

-- `Candidate N:` judging; nil when the message is not a judge prompt.
local function judge (text)
  local lt = lower(text)
  if find(lt, "best candidate", 1, true) then
    local cands, cur = {}, nil
    for line in gmatch_lines(text) do
      local n, rest = match(line, "^%s*[Cc]andidate%s+(%d+)%s*:(.*)$")
      if n then
        cur = { n = tonumber(n), text = rest }
        cands[#cands + 1] = cur
      elseif cur then
        cur.text = cur.text .. "\n" .. line
      end
    end
    if #cands > 0 then
      local best
      for _, c in ipairs(cands) do
        local w = words(c.text)
        if not best or w > best.w or (w == best.w and c.n < best.n) then best = { n = c.n, w = w } end
      end
      return tostring(best.n)
    end
  end
  if find(lt, "score the candidate", 1, true) then
    local s = find(text, "Candidate:", 1, true)
    local rest
    if s then rest = sub(text, s + #"Candidate:")
    else
      local _, e = find(text, "[Cc]andidate%s*%d*%s*:")
      rest = e and sub(text, e + 1) or ""
    end
    return tostring(math.min(10, words(rest) // 10 + 1))
  end
  return nil
end

-- What gsub(text, "[^\n]*[Cc]ategories%s*:[^\n]*", "") gives, in linear
-- steps (that pattern read each line again from each of its bytes, quadratic
-- in a long line): from the start of a line where "Categories:" starts to
-- the end of the line of the colon of the last one starting in that line.
local function without_categories (text)
  local out, pos = {}, 1
  while true do
    local s, e = find(text, "[Cc]ategories%s*:", pos)
    if not s then out[#out + 1] = sub(text, pos); return concat(out) end
    local ls = s
    while ls > pos and byte(text, ls - 1) ~= 10 do ls = ls - 1 end
    local le = find(text, "\n", s, true) or #text + 1
    while true do
      local s2, e2 = find(text, "[Cc]ategories%s*:", s + 1)
      if not s2 or s2 >= le then break end
      s, e = s2, e2
    end
    out[#out + 1] = sub(text, pos, ls - 1)
    pos = find(text, "\n", e, true) or #text + 1
  end
end

-- `Categories: a, b, c` classification; nil when the message is not one.
local function classify (text)
  local list
  for line in gmatch_lines(text) do
    local l = match(line, "^%s*[Cc]ategories%s*:(.*)$")   -- (trimmed in loops: "(.-)%s*$" was quadratic)
    if l then list = trim(l) end
  end
  if not list or list == "" then return nil end
  local cats = {}
  for c in string.gmatch(list, "[^,]+") do
    c = trim(c)
    if c ~= "" then cats[#cats + 1] = c end
  end
  if #cats == 0 then return nil end
  local input = match(text, "[Ii]nput%s*:%s*(.*)$")
  if not input then
    input = without_categories(text)
  end
  input = lower(input)
  local best, at
  for _, c in ipairs(cats) do
    local stem = lower(gsub(c, "[_%-]", " "))
    local forms = { stem }
    if sub(stem, -1) == "s" and #stem > 1 then forms[2] = sub(stem, 1, -2) end
    for _, f in ipairs(forms) do
      local pos = find(input, "%f[%w]" .. gsub(f, "%p", "%%%0") .. "%f[%W]")
      if pos and (not at or pos < at) then best, at = c, pos end
    end
  end
  return best or cats[#cats]
end

local COUNTRIES = {
  france = { "France", "Paris" }, germany = { "Germany", "Berlin" }, italy = { "Italy", "Rome" },
  spain = { "Spain", "Madrid" }, japan = { "Japan", "Tokyo" }, portugal = { "Portugal", "Lisbon" },
  canada = { "Canada", "Ottawa" }, australia = { "Australia", "Canberra" }, england = { "England", "London" },
  china = { "China", "Beijing" }, india = { "India", "New Delhi" }, brazil = { "Brazil", "Brasília" },
  egypt = { "Egypt", "Cairo" }, mexico = { "Mexico", "Mexico City" }, norway = { "Norway", "Oslo" },
}

local STORY = "Once upon a time, in a quiet workshop at the edge of the city, there lived a robot named %s. "
  .. "%s had been built to sort screws and bolts, but every evening it watched the sunset through a dusty "
  .. "window and wondered how the sky could hold so many colors. One day it found an old box of paints left "
  .. "behind by the workshop's owner. Its first attempts were clumsy: straight lines, perfect circles, and "
  .. "nothing that felt alive. So %s began to study the world instead of measuring it. It noticed how "
  .. "shadows softened in the afternoon, how rain blurred the streetlights, and how people smiled at things "
  .. "that were not perfect at all. Slowly its brushstrokes loosened. Months later, %s painted the sunset it "
  .. "had watched for so long, and for the first time the owner stopped, smiled, and hung the painting by the "
  .. "window. %s had learned that art is not about precision, but about paying attention."


local function three (a, b, c) return { a, b, c } end

local QUESTION_END = { [33] = true, [46] = true, [63] = true }   -- ("!", ".", "?")
local function space (b) return b == 32 or (b >= 9 and b <= 13) end

-- What match(l, "capital of ([%a ]-)%s*[%?%.!]*%s*$") gives, in linear steps
-- (the lazy capture tried the end pattern over the rest at each byte: a
-- question with a long run of spaces took minutes). The end it leaves out is
-- the longest of white space, then "?.!", then white space; the capture
-- follows the first "capital of" after the last byte before that end that
-- is not a letter or a space.
local function capital_asked (l)
  local j = #l
  while j >= 1 and space(byte(l, j)) do j = j - 1 end
  while j >= 1 and QUESTION_END[byte(l, j)] do j = j - 1 end
  while j >= 1 and space(byte(l, j)) do j = j - 1 end
  local last_other = 0
  for k = j, 1, -1 do
    local b = byte(l, k)
    if not (b == 32 or (b >= 65 and b <= 90) or (b >= 97 and b <= 122)) then last_other = k; break end
  end
  local s = find(l, "capital of ", last_other + 1, true)
  return s and sub(l, s + 11, j)
end

-- What match(l, "(%-?%d+%.?%d*)%s*([%+%-%*/x])%s*(%-?%d+%.?%d*)") gives, in
-- linear steps (that pattern backtracked over a run of digits from each of
-- its digits, cubic in it: 2,000 digits in a message took over 20 s). A
-- number read greedily from a start inside another ends where that one
-- does, and no shorter number is followed by an operator; only a start in
-- the decimals ("2" of "1.2.3") can end elsewhere.
local function operation (l)
  local pos = 1
  while true do
    local i = find(l, "%-?%d", pos)
    if not i then return nil end
    local a, frac, e = match(l, "^(%-?%d+%.?()%d*)()", i)
    local op, b = match(l, "^%s*([%+%-%*/x])%s*(%-?%d+%.?%d*)", e)
    if op then return a, op, b end
    pos = (frac < e and byte(l, frac - 1) == 46) and frac or e
  end
end

-- Rules that compute their reply: function(text, lower_text) -> variants or nil.
local COMPUTED = {
  function (t)
    local x = match(t, "^%s*[Rr]epeat after me:(.*)$") or match(t, "^%s*[Ee]cho:(.*)$")
    if x then return { trim(x) } end
  end,
  function (_, l)
    local c = capital_asked(l) or match(l, "capital of (%a+)")
    if c then
      c = trim_end((gsub(c, "^the ", "")))   -- (one argument: a second is trim_end's blanks)
      local e = COUNTRIES[c] or (c == "the united kingdom" or c == "united kingdom" or c == "uk")
        and { "the United Kingdom", "London" }
      if e then
        return three(format("The capital of %s is %s.", e[1], e[2]), format("%s is the capital of %s.", e[2], e[1]),
          format("%s's capital city is %s.", e[1], e[2]))
      end
      return three("I'm not sure about that capital, but an atlas or encyclopedia will have it.",
        "I don't know that one offhand; a quick look at an atlas would settle it.",
        "That capital isn't in my notes, I'm afraid.")
    end
  end,
  function (_, l)
    if find(l, "story", 1, true) and find(l, "robot", 1, true) then
      local out = {}
      for i, name in ipairs { "Pixel", "Rusty", "Nova" } do out[i] = format(STORY, name, name, name, name, name) end
      -- Three lengths, so that judges that count words have a choice.
      out[2] = out[2] .. " Rusty still paints every evening, and the little workshop has never looked so bright."
      out[3] = gsub(out[3], " It noticed how shadows.- at all%.", "")
      return out
    end
  end,
  function (_, l)
    local a, op, b = operation(l)
    if a and (find(l, "what", 1, true) or find(l, "calculate", 1, true) or find(l, "^[%s%d%.%+%-%*/x=?]+$")) then
      local x, y = tonumber(a), tonumber(b)
      local r
      if op == "+" then r = x + y elseif op == "-" then r = x - y
      elseif op == "/" then r = y ~= 0 and x / y or nil else r = x * y end
      if not r then return { "Division by zero is undefined." } end
      local rs = num(r)
      return three(format("%s %s %s = %s.", a, op == "x" and "*" or op, b, rs), format("The answer is %s.", rs),
        format("That comes to %s.", rs))
    end
  end,
}

-- Keyword replies, in order: `any` = phrases found anywhere in the lower-case
-- message, `starts` = Lua patterns anchored at its start; then 3 variants.
local KEYWORD_REPLIES = {
  { any = { "joke" },
    "Why did the robot go on vacation? It needed to recharge its batteries.",
    "I told my computer I needed a break, and it said: no problem, I'll go to sleep.",
    "Why do programmers prefer dark mode? Because light attracts bugs." },
  { any = { "how are you" },
    "I'm doing well, thank you for asking! How can I help you today?",
    "All systems running smoothly, thanks! What can I do for you?",
    "I'm great, thanks. What would you like to talk about?" },
  { any = { "your name", "who are you" },
    "I'm aigc-dev, a local test model that speaks the OpenAI API.",
    "My name is aigc-dev; I run on your machine for demos and tests.",
    "I'm aigc-dev, a small deterministic assistant for development." },
  { any = { "weather" },
    "I can't check live weather, but it's always sunny on localhost.",
    "No live data here, I'm afraid; a weather service will know better than me.",
    "I don't have weather data, but a light jacket is rarely a bad idea." },
  { any = { "refund" },
    "I'm sorry about the trouble. Please share your order number and I'll start the refund; it "
      .. "usually arrives within 5 business days.",
    "I can help with that refund. Once I have your order number, the money goes back to your original "
      .. "payment method within 5 business days.",
    "Sorry to hear that. Refunds take up to 5 business days once approved; could you send me the order number?" },
  { any = { "where is my", "track", "order status" },
    "Your order has shipped and should arrive within 2 to 3 business days. You can follow it "
      .. "with the tracking link in your confirmation email.",
    "I checked: the package is on its way and the tracking link in your email shows its progress.",
    "Good news: the order left our warehouse. Delivery usually takes 2 to 3 business days." },
  { any = { "password", "log in", "login" },
    "To reset your password, click \"Forgot password\" on the sign-in page and follow the link "
      .. "we email you.",
    "No problem: use \"Forgot password\" on the login page and you'll get a reset link by email within "
      .. "a few minutes.",
    "You can set a new password from the sign-in page; the reset link we send is valid for one hour." },
  { any = { "cancel", "unsubscribe" },
    "I can cancel that for you. The cancellation takes effect at the end of the current billing "
      .. "period.",
    "Your subscription can be cancelled under Account, Billing; you keep access until the period ends.",
    "Done deal: once cancelled, you won't be charged again and your access lasts until the end of the "
      .. "period." },
  { any = { "shipping", "delivery" },
    "Standard shipping takes 3 to 5 business days; express arrives in 1 to 2.",
    "We ship within 24 hours; standard delivery then takes 3 to 5 business days.",
    "Delivery usually takes 3 to 5 business days, or 1 to 2 with express shipping." },
  { any = { "broken", "damaged", "complain" },
    "I'm really sorry about that. I'll send a replacement right away, free of charge.",
    "That shouldn't happen. Please send a photo of the item and we'll replace it or refund you.",
    "Apologies for the trouble! A replacement is on its way, and you can keep the damaged one." },
  { any = { "opening hours", "open on", "what time do you" },
    "We're open Monday to Friday, 9am to 6pm, and Saturday 10am to 4pm.",
    "Our hours are 9am to 6pm on weekdays and 10am to 4pm on Saturdays.",
    "You can reach us weekdays from 9 to 6 and Saturdays from 10 to 4." },
  { any = { "thank" },
    "You're welcome! Anything else I can help with?", "Happy to help!",
    "My pleasure. Let me know if there's anything else." },
  { starts = { "bye" }, any = { "goodbye", "see you" },
    "Goodbye! Have a great day.", "See you soon!", "Bye for now, take care!" },
  { starts = { "hello", "hi%f[%W]", "hey%f[%W]", "good morning" },
    "Hello! How can I help you today?", "Hi there! What can I do for you?",
    "Hello! What would you like to talk about?" },
}

local function keyword_reply (l)
  for _, rule in ipairs(KEYWORD_REPLIES) do
    for _, phrase in ipairs(rule.any or {}) do
      if find(l, phrase, 1, true) then return rule end
    end
    for _, pat in ipairs(rule.starts or {}) do
      if find(l, "^%s*" .. pat) then return rule end
    end
  end
  return nil
end

local function short_quote (text)
  local q = trim(gsub(text, "%s+", " "))
  if #q > 60 then
    local cut = match(sub(q, 1, 60), "^(.*%S)%s") or sub(q, 1, 60)
    q = cut .. "..."
  end
  return q
end

local function generic (ctx)
  local q = short_quote(ctx.last_text)
  if q == "" then
    return three("Hello! How can I help you today?", "Hi! What would you like to talk about?",
      "Hello! Ask me anything.")
  end
  if ctx.turn <= 1 then
    return three(
      format("You asked: \"%s\". Here is a short answer: it depends on the details, but I'm happy to help.", q),
      format("Thanks for your message about \"%s\". Let me think: I would start with the basics.", q),
      format("I understand you said \"%s\". That's an interesting point; could you tell me a bit more?", q))
  end
  return three(
    format("Following up on \"%s\" (turn %d): that builds nicely on what we discussed so far.", q, ctx.turn),
    format("Good point about \"%s\". At turn %d, I'd suggest we take it one step at a time.", q, ctx.turn),
    format("Noted: \"%s\". This is turn %d of our chat, and we can keep exploring it together.", q, ctx.turn))
end

local function pick (ctx, variants)
  if #variants == 1 or ctx.temperature == 0 or (ctx.seed == nil and ctx.index == 0) then return variants[1] end
  local key = concat({ ctx.model, tostring(ctx.seed), ctx.index, ctx.turn, ctx.last_text }, "\0")
  return variants[fnv(key) % #variants + 1]
end

-- The reply text for a conversation context (also used inside structured output).
local function reply_text (ctx)
  if ctx.tool_results then return "Here is what I found: " .. concat(ctx.tool_results, "; ") end
  local j = judge(ctx.last_text) or classify(ctx.last_text)
  if j then return j end
  local l = lower(ctx.last_text)
  local text
  for _, rule in ipairs(COMPUTED) do
    local v = rule(ctx.last_text, l)
    if v then text = pick(ctx, v); break end
  end
  text = text or pick(ctx, keyword_reply(l) or generic(ctx))
  if ctx.images > 0 then
    text = text .. format(" (I received %d image%s.)", ctx.images, ctx.images == 1 and "" or "s")
  end
  return text
end

-- The context of a chat request: last user text, turn number, trailing tool results.
-- (`base`: what the messages before these add up to, `turn`, `last_text`,
-- `images`, as a Responses chain keeps them: aigc.devserver.responses_build)
local function conversation (model, messages, seed, temperature, base)
  local ctx = { model = model, seed = seed, temperature = temperature, index = 0, turn = base and base.turn or 0,
                last_text = base and base.last_text or "", images = base and base.images or 0 }
  for _, m in ipairs(messages) do
    if m.role == "user" then
      ctx.turn = ctx.turn + 1
      ctx.last_text = content_text(m.content)
      ctx.images = count_images(m.content)
    end
  end
  local last = messages[#messages]
  if last and last.role == "tool" then
    local results, i = {}, #messages
    while i >= 1 and messages[i].role == "tool" do
      table.insert(results, 1, content_text(messages[i].content)); i = i - 1
    end
    ctx.tool_results = results
  end
  return ctx
end

M.reply_text, M.conversation, M.judge, M.classify = reply_text, conversation, judge, classify

return M
