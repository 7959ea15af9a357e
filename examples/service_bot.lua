-- A customer-service bot: a conversation that remembers the chat, tools for
-- order lookup and the refund policy, replies streamed as they are written.
--
--   lua5.4 examples/service_bot.lua                 a scripted chat
--   lua5.4 examples/service_bot.lua --interactive   type yourself (/quit)
--
-- Uses OPENAI_BASE_URL / OPENAI_API_KEY; AIGC_MODEL picks the model. With a
-- real model the tools are called when it decides to; the bundled server
-- calls a tool when the message names it ("track order", "refund policy").
local aigc = require "aigc"

local interactive = arg[1] == "--interactive"
if arg[1] and not interactive then
  io.stderr:write("usage: service_bot.lua [--interactive]\n")
  os.exit(2)
end

-- The shop's "database".
local ORDERS = {
  ["A-1042"] = { item = "espresso machine", status = "shipped", carrier = "DHL", eta = "Thursday" },
  ["B-2077"] = { item = "hiking boots", status = "being packed", carrier = "UPS", eta = "next Monday" },
}

-- Shows each tool call in the bot's line, as it runs.
local function show_call (name, args)
  io.write(("[%s %s] "):format(name, aigc.json.encode(args)))
  io.flush()
end

local tools = aigc.tools {
  {
    name = "track_order",
    description = "Look up an order's status, carrier and expected delivery by its order id (like A-1042).",
    parameters = {
      type = "object",
      properties = { order_id = { type = "string", description = "The order id, e.g. A-1042" } },
      required = { "order_id" },
      additionalProperties = false,
    },
    fn = function (args)
      show_call("track_order", args)
      local o = ORDERS[args.order_id:upper()]
      if not o then return nil, "no order " .. args.order_id end
      return ("Order %s (%s) is %s with %s, expected %s."):format(args.order_id:upper(), o.item, o.status,
                                                                   o.carrier, o.eta)
    end,
  },
  {
    name = "refund_policy",
    description = "The shop's refund and return policy.",
    parameters = { type = "object", properties = {}, additionalProperties = false },
    fn = function (args)
      show_call("refund_policy", args)
      return "Returns within 30 days, free for damaged items; the refund reaches the card in 5 business days."
    end,
  },
}

local client = aigc.client { model = os.getenv("AIGC_MODEL") or "gpt-4o-mini" }
local conv = aigc.conversation {
  client = client,
  system = "You are Sam, the friendly support agent of the Cosy Kitchen shop. Use the tools to look up "
    .. "orders and the refund policy; never guess an order's status. Answer in one or two sentences.",
  params = { tools = tools, temperature = 0.3 },
  max_context_tokens = 3000,   -- long chats keep the first and the latest turns
  keep_first = 1,
  keep_last = 4,
}

local SCRIPT = {
  "Hi there!",
  "Can you track order A-1042 for me?",
  "And could you track order B-2077 as well?",
  "The first one arrived damaged. What is your refund policy?",
  "Thanks, that's all!",
}

local input
if interactive then
  input = function ()
    io.write("you> ")
    io.flush()
    local line = io.read("*l")
    if line == "/quit" then return nil end
    return line
  end
else
  local i = 0
  input = function ()
    i = i + 1
    if SCRIPT[i] then print("you> " .. SCRIPT[i]) end
    return SCRIPT[i]
  end
end

local calls = 0
for line in input do
  if line:find("%S") then
    io.write("sam> ")
    io.flush()
    local reply, res = conv:say(line, {
      stream = function (delta) if delta then io.write(delta); io.flush() end end,
    })
    print()
    if not reply then
      print("(sorry, something went wrong: " .. tostring(res) .. ")")
    else
      calls = calls + #res.tool_calls_made
    end
  end
end

print(("\n(%d messages remembered, about %d tokens; %d tool calls made)"):format(
  #conv.messages, conv:tokens(), calls))
client:close()
