--- Every Lua example in README.md runs as written (issue 10, acceptance).
--
-- Each ```lua block of the README runs in its own `lua5.4` process, against
-- the bundled server (`OPENAI_BASE_URL` points at it, no API key), with this
-- checkout's aigc on the path. A block "runs" when it ends without an
-- error within 60 s; what it prints is shown when it does not.
--
-- The variables the README's fragments assume (`client`, `c`, `msgs`,
-- `tools`, `npc_schema`, ...) come from one prelude below, the same for
-- every block, each one documented; a block that uses a name neither it
-- nor the prelude defines fails, naming it. A block that cannot run here is
-- marked in the README by an HTML comment on the line just before its fence:
--
--   <!-- readme: needs-key -->          needs a real API key (a real endpoint): skipped, saying so
--   <!-- readme: skip REASON -->        not runnable as a whole (say why): skipped, saying so
--
-- Blocks are found by their fence (```lua ... ```), so sections may move
-- and change; a test is named by its section heading and first line.

local devserver = require "devserver"
local proc = require "procutil"

local ROOT = os.getenv("AIGC_SPEC_ROOT") or "."
local LUA = os.getenv("LUA") or "lua5.4"

--- The Lua code blocks of a Markdown text: { code =, heading =, line =, mark = }.
local function lua_blocks (text)
  local blocks = {}
  local heading, prev, n = "(top)", "", 0
  local in_block, fence, lang, buf, start, mark, strip = false, nil, nil, nil, nil, nil, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if not in_block then
      local indent, f, info = line:match("^(%s*)(```+)%s*([%w_+-]*)")
      if not f then indent, f, info = line:match("^(%s*)(~~~+)%s*([%w_+-]*)") end
      if f and #indent < 4 then
        in_block, fence, lang, buf, start, strip = true, f, info:lower(), {}, n, #indent
        mark = prev:match("^%s*<!%-%-%s*readme:%s*(.-)%s*%-%->%s*$")
      else
        local h = line:match("^#+%s+(.-)%s*#*%s*$")
        if h then heading = h end
        if line:match("%S") then prev = line end
      end
    else
      local f = line:match("^%s*([`~]+)%s*$")
      if f and f:sub(1, 1) == fence:sub(1, 1) and #f >= #fence then
        if lang == "lua" then
          blocks[#blocks + 1] = { code = table.concat(buf, "\n"), heading = heading, line = start, mark = mark }
        end
        in_block, prev = false, ""
      else
        -- (a block indented inside a list item: its lines lose the fence's indent)
        local lead = #line:match("^ *")
        buf[#buf + 1] = line:sub(math.min(lead, strip) + 1)
      end
    end
  end
  return blocks
end

-- What the README's fragments take as given. Every name here is one a
-- README block uses without defining it; keep the list short and honest.
local PRELUDE = [==[
local aigc = require "aigc"
-- `client` / `c`: a client of the bundled server ($OPENAI_BASE_URL, no key)
local client = aigc.client { model = "aigc-dev" }
local c = client
-- `msgs`: a conversation so far
local msgs = { { role = "user", content = "What is the capital of France?" } }
-- callbacks named in the non-blocking example
local function on_delta (delta) io.write(delta or "") end
local function f (res) print("done:", res.text) end
local function g (err) print("failed:", err) end
-- `tools`: a toolset with the README's track_order tool
local tools = aigc.tools {
  { name = "track_order", description = "Order status by id",
    parameters = { type = "object", properties = { order_id = { type = "string" } }, required = { "order_id" } },
    fn = function (args) return "Order " .. args.order_id .. " ships Thursday." end },
}
-- `npc_schema`: the structured-output example's schema (it reads `.action`)
local npc_schema = {
  type = "object", additionalProperties = false, required = { "action", "say" },
  properties = { action = { type = "string", enum = { "wave", "attack", "flee" } }, say = { type = "string" } },
}
-- the strategies' params: `prompt`, `q`, `task`, `p`; their clients `a`, `b`, `backup`; `primary` an entry
local prompt = { messages = { { role = "user", content = "Tell me a story about a robot that learns to paint" } } }
local q = { messages = { { role = "user", content = "What is 2 + 2?" } } }
local task = { messages = { { role = "user", content = "Write a haiku about the sea" } } }
local p = { messages = msgs }
local a, b, backup = client, aigc.client { model = "aigc-dev" }, aigc.client { model = "aigc-dev" }
local primary = { client = a }
-- `text`: an input to route
local text = "I want a refund for my order A-1042"
-- `timeout`, `budget`: the arguments of client:step named in its signature
local timeout, budget = 0.01, 0
-- A README line `print(...) --> TEXT` becomes a call of this (see `script_of`):
-- it prints as print does, and fails unless the printed line is TEXT (runs of
-- spaces and tabs compare equal).
local function readme_prints (want, line, ...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  print(table.concat(parts, "\t"))
  local function norm (s) return (s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")) end
  if norm(table.concat(parts, " ")) ~= norm(want) then
    error(string.format("README.md:%d prints %q where the README says it prints %q", line,
      table.concat(parts, "\t"), want), 0)
  end
end
-- Anything else a block uses must be defined in it: say which name is missing.
setmetatable(_ENV, { __index = function (_, name)
  error("the README block uses '" .. tostring(name)
    .. "', which neither it nor spec/readme_spec.lua's prelude defines", 2)
end })
]==]

-- The block's lines `print(ARGS) --> TEXT` as checks of what they print
-- (`readme_prints`), each still one line; and how many there were.
local function checked_prints (block)
  local lines, n = {}, 0
  local i = 0
  for line in (block.code .. "\n"):gmatch("([^\n]*)\n") do
    i = i + 1
    local indent, args, want = line:match("^(%s*)print(%b())%s*%-%->%s*(.-)%s*$")
    if indent then
      n = n + 1
      line = string.format("%sreadme_prints(%q, %d, %s)", indent, want, block.line + i, args:sub(2, -2))
    end
    lines[i] = line
  end
  return table.concat(lines, "\n"), n
end

-- The script a block runs as: two path lines, the prelude, an empty line,
-- then the block, whose first line is README line `fence + 1`.
local function script_of (block)
  local head = string.format("package.path = %q .. package.path\npackage.cpath = %q .. package.cpath\n",
    ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;", ROOT .. "/?.so;")
  local before = select(2, head:gsub("\n", "")) + select(2, PRELUDE:gsub("\n", "")) + 1
  return head .. PRELUDE .. "\n" .. checked_prints(block) .. "\n", before
end

-- Rewrites "FILE:N:" in the output as "README.md:M:" (or "prelude:N:").
local function readme_positions (out, file, block, before)
  return (out:gsub(file:gsub("%p", "%%%0") .. ":(%d+):", function (n)
    n = tonumber(n)
    if n > before then return "README.md:" .. (n - before + block.line) .. ":" end
    return "spec/readme_spec.lua prelude line " .. n .. ":"
  end))
end

local function first_line (code)
  for line in code:gmatch("[^\n]+") do
    if line:match("%S") then return (line:gsub("^%s+", "")):sub(1, 60) end
  end
  return "(empty)"
end

-- Runs a block against the server at base_url: what it printed; an error
-- (naming the README's lines) when it fails.
local function run_block (block, base_url)
  local file = os.tmpname()
  local script, before = script_of(block)
  local fh = assert(io.open(file, "w"))
  fh:write(script)
  fh:close()
  local cmd = string.format("cd %s && env -u OPENAI_API_KEY -u AZURE_OPENAI_API_KEY -u AZURE_OPENAI_ENDPOINT "
    .. "-u OPENAI_ORG_ID -u OPENAI_PROJECT_ID OPENAI_BASE_URL=%s timeout 60 %s %s </dev/null",
    proc.quote(ROOT), proc.quote(base_url), LUA, proc.quote(file))
  local ok, out = proc.sh(cmd)
  os.remove(file)
  if not ok then
    error(string.format("README.md:%d (%s) does not run as written:\n%s", block.line, block.heading,
      readme_positions(out, file, block, before)), 0)
  end
  return out
end

describe("README.md's Lua examples", function ()
  local text = assert(proc.read_file(ROOT .. "/README.md"), "README.md not found")
  local blocks = lua_blocks(text)
  local srv

  setup(function () srv = devserver.start { pause_ms = 0 } end)
  teardown(function () if srv then srv:stop() end end)

  it("has Lua examples to run", function ()
    assert.is_true(#blocks > 0)
  end)

  it("says what some of them print (`print(...) --> TEXT`), which their runs check", function ()
    local n = 0
    for _, block in ipairs(blocks) do n = n + select(2, checked_prints(block)) end
    assert.is_true(n >= 5, n .. " checked prints")
  end)

  for i, block in ipairs(blocks) do
    local name = string.format("block %d (README.md:%d, %s): %s", i, block.line, block.heading, first_line(block.code))
    local mark = block.mark
    if mark and mark:match("^needs%-key") then
      pending(name .. " needs a real API key: skipped")
    elseif mark and mark:match("^skip") then
      pending(name .. " skipped in the README: " .. (mark:match("^skip%s*(.*)") or ""))
    else
      it("run as written: " .. name, function () run_block(block, srv.base_url) end)
    end
  end

  -- (a README snippet with an error branch teaches what users copy: that
  -- branch must hold for every kind of failure, not the one its author had
  -- in mind; `err.violations` is a schema error's only)
  it("the Structured output example's error branch runs on every failure: schema, incomplete, no server", function ()
    local block
    for _, b in ipairs(blocks) do
      if b.heading:match("^Structured output") then block = b; break end
    end
    assert.is_truthy(block, "no Lua block under Structured output")
    local scripted = require "scripted"
    local replies = { scripted.chat { content = '{"action": "dance", "say": "hi"}' },
                      scripted.chat({ content = '{"action": "wa' }, "length") }
    for _, reply in ipairs(replies) do
      local one = scripted.start { reply }
      local out = run_block(block, one.base_url)
      one.finish()
      assert.is_truthy(out:match("schema") or out:match("incomplete"), out)
    end
    local out = run_block(block, "http://127.0.0.1:1/v1")
    assert.is_truthy(out:match("network") or out:match("connect"), out)
  end)
end)
