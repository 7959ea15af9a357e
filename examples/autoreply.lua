-- Answers a batch of 50 short customer emails concurrently, at most 8
-- requests at a time, with a progress line. Each email is one task: the
-- model sorts it into a department (a route), then that department's
-- prompt answers it. Tasks wait without blocking each other; the client's
-- max_concurrency queues what is over the cap. The figures count the
-- emails waiting for a reply (each has one request out at a time, the
-- route then the answer: queued or sent), as the tasks themselves see it.
--
--   lua5.4 examples/autoreply.lua          (OPENAI_BASE_URL: e.g. the bundled server)
local aigc = require "aigc"

local CAP = 8
local client = aigc.client { model = os.getenv("AIGC_MODEL") or "gpt-4o-mini", max_concurrency = CAP }

local NAMES = { "Ada", "Bruno", "Chen", "Dina", "Emeka" }
local TOPICS = {
  "Where is my order #%d? It has been a week.",
  "I want a refund: the kettle in order #%d arrived broken.",
  "I forgot the password of my account and cannot log in.",
  "Please cancel the subscription on my account, thanks.",
  "How long does shipping to Lisbon take?",
  "Could you track order %d for me?",
  "Refund please: order %d was the wrong size.",
  "My account login page rejects my password.",
  "What are your opening hours on Saturday?",
  "Can I change the delivery address of order %d?",
}
local emails = {}
for i = 1, 50 do
  emails[i] = { from = NAMES[(i - 1) % #NAMES + 1],
                text = TOPICS[(i - 1) % #TOPICS + 1]:format(4400 + i) }
end

local DEPARTMENTS = {
  orders = "You are the shipping desk of an online shop. Answer in one friendly sentence.",
  refunds = "You handle refunds and damaged goods. Be kind and concrete, one sentence.",
  account = "You handle logins and subscriptions. One short, clear sentence.",
  other = "You are a helpful shop assistant. One sentence.",
}
local routes = {}
for name, system in pairs(DEPARTMENTS) do routes[name] = { system = system, max_tokens = 80 } end

local answer = aigc.strategy.router {
  client = client,
  classify = { client = client, prompt = "Sort this customer email into one department. Reply with its name only." },
  labels = { "orders", "refunds", "account", "other" },   -- "other" last: the catch-all
  routes = routes,
  default = "other",
}

local done, failed, waiting, peak = 0, 0, 0, 0
local per_department = {}
local started = aigc.now()
for _, mail in ipairs(emails) do
  client:spawn(function ()
    waiting = waiting + 1
    peak = math.max(peak, waiting)
    local res, info = answer(mail.text)
    waiting = waiting - 1
    if res then
      mail.department, mail.reply = info.route, res.text
      per_department[info.route] = (per_department[info.route] or 0) + 1
    else
      mail.error = info
      failed = failed + 1
    end
    done = done + 1
  end)
end

local function progress ()
  local width = 30
  local filled = math.floor(done / #emails * width)
  io.write(("\r[%s%s] %2d/%d answered, %2d waiting for a reply "):format(("#"):rep(filled),
           ("."):rep(width - filled), done, #emails, waiting))
  io.flush()
end

local shown = -1
while done < #emails do
  client:step(0.02)
  if done ~= shown then progress(); shown = done end
end
progress()
print(("\n\n%d emails answered in %.2f s (up to %d waiting for a reply at once; max_concurrency sent"
  .. " at most %d at a time and queued the rest)%s"):format(done - failed, aigc.now() - started, peak, CAP,
  failed > 0 and (", " .. failed .. " failed") or ""))

print("\nBy department:")
for _, name in ipairs { "orders", "refunds", "account", "other" } do
  print(("  %-8s %2d  %s"):format(name, per_department[name] or 0, ("*"):rep(per_department[name] or 0)))
end

print("\nA few of the replies:")
for _, i in ipairs { 1, 2, 4, 9 } do
  local m = emails[i]
  print(("  %s wrote: %s\n    -> [%s] %s\n"):format(m.from, m.text, m.department or "?",
                                                    m.reply or tostring(m.error)))
end
client:close()
