-- A chatbot REPL that keeps the conversation's history and streams replies.
--
--   lua5.4 examples/chatbot.lua                       interactive (/reset, /quit)
--   lua5.4 examples/chatbot.lua --script lines.txt    one user line per line
--
-- Uses OPENAI_BASE_URL / OPENAI_API_KEY; AIGC_MODEL picks the model. Against
-- the bundled server: `make server` in another terminal, then
-- OPENAI_BASE_URL=http://127.0.0.1:8089/v1 lua5.4 examples/chatbot.lua
local aigc = require "aigc"

local script_file
do
  local i = 1
  while arg[i] do
    if arg[i] == "--script" then
      script_file = arg[i + 1]
      i = i + 2
    else
      io.stderr:write("usage: chatbot.lua [--script FILE]\n")
      os.exit(2)
    end
  end
end

local client = aigc.client { model = os.getenv("AIGC_MODEL") or "gpt-4o-mini" }
local system = { role = "system", content = "You are a friendly, concise assistant." }
local history = { system }

local input
if script_file then
  local f = assert(io.open(script_file))
  input = f:lines()
else
  input = function ()
    io.write("you> ")
    io.flush()
    return io.read("*l")
  end
end

for line in input do
  if script_file then print("you> " .. line) end
  if line == "/quit" then break end
  if line == "/reset" then
    history = { system }
    print("(history cleared)")
  elseif line:find("%S") then
    history[#history + 1] = { role = "user", content = line }
    io.write("bot> ")
    local res, err = client:chat {
      messages = history,
      stream = function (delta)
        if delta then io.write(delta); io.flush() end
      end,
    }
    print()
    if res then
      history[#history + 1] = { role = "assistant", content = res.text }
    else
      -- The failed turn is not kept: the next one starts from a clean history.
      history[#history] = nil
      print("(error: " .. tostring(err) .. ")")
    end
  end
end
if script_file then
  print(string.format("(%d messages in the conversation)", #history))
end
