--- `aigc "prompt"`: one prompt, its reply streamed to the terminal, logged.
--
-- @module aigc.cli.prompt

local aigc = require "aigc"
local argparse = require "argparse"
local common = require "aigc.cli.common"
local util = require "aigc.util"
local compat = require "aigc.compat"
local config_mod = require "aigc.cli.config"
local future = require "aigc.future"
local promptlog = require "aigc.promptlog"
local task = require "aigc.task"

local M = {}

--- The parser of the prompt command.
-- @tparam[opt="aigc"] string name
-- @treturn table argparse parser
function M.parser (name)
  local p = argparse(name or "aigc", "Send a prompt to an OpenAI-compatible server; the reply streams to stdout.")
  p:help_max_width(100):help_description_margin(28)
  p:epilog([[Other commands: aigc chat | models | logs | templates | run | image | speak   (aigc COMMAND --help)
Examples:
  aigc "What is the capital of France?"
  cat doc.txt | aigc -s "You are terse." "Summarise this."
  aigc -c "And of Spain?"                  continue the last conversation
  aigc -t summary -p lang=French < doc.txt
  aigc --schema 'name, age int' "Invent a person."
  aigc --best-of 3 --judge "Which is the most vivid?" "Write a one-line story."
  aigc -e local "Hi"                        the bundled server (make server)]])
  p:argument("prompt", "The prompt (words are joined; stdin, if piped, comes first; '-' puts it there)."):args("*")
  common.model_options(p)
  p:flag("-c --continue", "Continue the last conversation.")
  p:option("--cid", "Continue the conversation with this id (or a unique prefix).")
  p:flag("--json", "Print the whole response as JSON.")
  p:option("--schema", "Structured output: a JSON schema file, inline JSON, or 'name, age int, ...'; "
           .. "prints the parsed reply as JSON.")
  p:option("-n", "Number of choices (1 to 128).", nil, tonumber)
  p:option("--best-of", "Generate N candidates and keep the best (a judge ranks them).", nil, tonumber)
  p:option("--judge", "The judge's instruction for --best-of.")
  p:option("--vote", "Ask N times and print the majority answer.", nil, tonumber)
  p:flag("--no-stream", "Wait for the whole reply instead of streaming it.")
  p:flag("--version", "Print the version and exit.")   -- (aigc.cli.main answers it)
  return p
end

local join_input, positive, MAX_CANDIDATES = common.join_input, common.positive, common.MAX_CANDIDATES
-- The most choices one chat call may ask (OpenAI's `n`: 1 to 128).
local MAX_CHOICES = 128

-- The params of `-t NAME`: the template rendered with -p's variables, the
-- prompt's text as {{input}} -- or, for a template of a system prompt
-- alone, as the user's message (it was dropped: only the system prompt
-- went).
local function template_params (args, input, extra)
  local tpl = common.template(args.template)
  local vars = common.template_vars(tpl, args.template, args.params)
  local uses_input = false
  for _, name in ipairs(tpl:variables(true)) do uses_input = uses_input or name == "input" end
  local user_text
  if input == "" and tpl.prompt == nil then   -- (a system prompt alone was sent)
    common.usage(("no prompt: template '%s' has no prompt: give one as an argument or on stdin")
                 :format(args.template))
  elseif input ~= "" and not uses_input and tpl.prompt == nil then
    user_text = input
  elseif input ~= "" then
    -- (the text was dropped without a word: `aigc -t capital France`, or a
    -- `while read` loop's stdin taken by a template that has no use for it)
    if not uses_input then
      common.usage(("template '%s' has no {{input}}: the prompt's text (arguments or stdin) would be ignored "
                    .. "(variables go with -p NAME=VALUE; stdin: </dev/null)"):format(args.template))
    end
    if vars.input ~= nil then
      common.usage("-p input=... and the prompt's text (arguments or stdin) both give {{input}}")
    end
    vars.input = input
  end
  local params, err = tpl:render(vars, extra)
  if not params then
    common.usage(tostring(err.message) .. (#(err.missing or {}) > 0 and " (give it with -p NAME=VALUE)" or ""))
  end
  if user_text then params.messages[#params.messages + 1] = { role = "user", content = user_text } end
  return params
end

--- Builds the chat params of an invocation: template or prompt, -o params,
-- the system prompt, the continued conversation's history, the model.
-- @tparam table args parsed arguments
-- @tparam table config
-- @tparam table|nil endpoint
-- @tparam string|nil stdin
-- @tparam table|nil history the continued conversation's messages
-- @tparam string|nil continued_model the continued conversation's model (after -m, -o model=
-- and the template's; before the endpoint's and the config's, as `aigc chat -c` takes it)
-- @treturn table params
function M.build_params (args, config, endpoint, stdin, history, continued_model)
  local words, text_at = {}, nil
  for _, w in ipairs(args.prompt or {}) do
    -- ("-" is stdin's place, the usual convention: `aigc -` sent "-" to
    -- the model, after the piped text)
    if w == "-" and not text_at then text_at = #words + 1 else words[#words + 1] = w end
  end
  if text_at then
    local piped = util.trim_end(stdin or "")   -- (a byte loop: gsub("%s+$", "") is quadratic in a run of spaces)
    if piped ~= "" then table.insert(words, text_at, piped) end
    stdin = nil
  end
  local text = table.concat(words, " ")
  local extra = common.options_table(args.options)
  local input = join_input(stdin, text)
  -- (refused by the request, it was named "params.messages[1].content", the
  -- byte counted from 0: named here as the user gave it, counted from 1)
  local utf8_ok, bad_at = compat.utf8_len(input)
  if not utf8_ok then common.usage(("aigc: invalid input: the prompt: invalid UTF-8 at byte %d"):format(bad_at)) end
  common.check_text(args.system, "-s")   -- (as aigc run says it: it was params.messages[1].content too)
  local params
  if args.template then
    params = template_params(args, input, extra)
  else
    if #(args.params or {}) > 0 then common.usage("-p sets template variables: it needs -t TEMPLATE") end
    if input == "" then common.usage("no prompt: give one as an argument or on stdin (aigc --help)") end
    params = extra
    params.messages = { { role = "user", content = input } }
  end
  local system
  for _, m in ipairs(params.messages) do if m.role == "system" then system = m.content end end
  if history and not system then
    for _, m in ipairs(history) do if m.role == "system" then system = m.content end end
  end
  system = args.system or system
  local msgs = {}
  if system then msgs[1] = { role = "system", content = system } end
  for _, m in ipairs(history or {}) do if m.role ~= "system" then msgs[#msgs + 1] = m end end
  for _, m in ipairs(params.messages) do if m.role ~= "system" then msgs[#msgs + 1] = m end end
  params.messages = msgs
  params.model = config_mod.model(config, endpoint, args.model, params.model or continued_model)
  if args.schema then params.schema = common.parse_schema(args.schema) end
  if args.n then
    params.n = positive(args.n, "-n")
    -- (-n 1e9 was sent: OpenAI's bound, as aigc image's -n has its own)
    if params.n > MAX_CHOICES then common.usage("-n: at most " .. MAX_CHOICES .. " choices per call") end
  end
  return params
end

-- The candidates' and judges' responses of a strategy's evidence.
local function evidence_responses (cands)
  local list = {}
  for _, c in ipairs(cands or {}) do
    if c.res then list[#list + 1] = c.res end
    if c.judge and c.judge.res then list[#list + 1] = c.judge.res end
  end
  if cands and cands.judge and cands.judge.res then list[#list + 1] = cands.judge.res end
  return list
end

-- Prints a choice's tool calls (`-o tools=...`), one a line as
-- `[tool call: NAME(ARGUMENTS)]`: a reply that only called a tool printed
-- an empty line. Returns whether it printed any.
local function tool_calls_shown (choice)
  local calls = type(choice) == "table" and type(choice.message) == "table" and choice.message.tool_calls
  if type(calls) ~= "table" then return false end
  local shown = false
  for _, call in ipairs(calls) do
    local f = type(call) == "table" and call["function"] or nil
    local name = type(f) == "table" and type(f.name) == "string" and f.name or "?"
    local arguments = type(f) == "table" and type(f.arguments) == "string" and f.arguments or ""
    common.out("[tool call: " .. name .. "(" .. arguments .. ")]\n")
    shown = true
  end
  return shown
end

local function run_strategy (args, client, params)
  local strategy = aigc.strategy
  local best_of, vote = positive(args.best_of, "--best-of", MAX_CANDIDATES),
    positive(args.vote, "--vote", MAX_CANDIDATES)
  if best_of and vote then common.usage("--best-of and --vote exclude each other") end
  if best_of then
    local best, cands = strategy.best_of { client = client, n = best_of, params = params,
                                           judge = { prompt = args.judge } }
    local extra = { strategy = "best_of", n = best_of }
    if not best then return nil, cands, extra end    -- (cands: the error)
    extra.chosen = best.index
    local res = { text = best.text, model = best.res and best.res.model,
                  usage = common.sum_usage(evidence_responses(cands)) }
    -- (every candidate's text too: the log kept the chosen one alone, and a
    -- user looking back lost the others, which the judge scored)
    extra.scores, extra.candidates = {}, {}
    for i, c in ipairs(cands) do
      extra.scores[i] = c.score or aigc.null
      extra.candidates[i] = { text = c.text, score = c.score, error = c.err and tostring(c.err) or nil }
    end
    local out = { text = best.text, index = best.index, score = best.score, candidates = {} }
    for i, c in ipairs(cands) do
      out.candidates[i] = { index = c.index, score = c.score, text = c.text, error = c.err and tostring(c.err) }
    end
    return res, out, extra
  end
  local win, cands = strategy.vote { client = client, n = vote, params = params }
  local extra = { strategy = "vote", n = vote }
  if not win then return nil, cands, extra end      -- (cands: the error)
  extra.answer, extra.count, extra.total = win.answer, win.count, win.total
  extra.candidates = {}   -- (each one's text and answer, as for --best-of)
  for i, c in ipairs(cands) do
    extra.candidates[i] = { text = c.text, answer = c.answer, error = c.err and tostring(c.err) or nil }
  end
  local res = { text = win.text, usage = common.sum_usage(evidence_responses(cands)) }
  return res, { text = win.text, answer = win.answer, count = win.count, total = win.total, tally = win.tally },
    extra
end

-- SIGTERM while the call runs cancels it, as Ctrl-C does, so that it is
-- logged (as "canceled", with what came); the process then ends by SIGTERM
-- once the log is written (`term_caught`). A luv handler only notes the
-- signal: the wait's loop (common.wait_interruptible) runs luv's loop, so
-- the cancel happens there, outside any client call. Without luv, SIGTERM
-- kills as before.
--
-- SIGPIPE likewise, while a reply streams: the reader went away (`aigc
-- "..." | head -5`). It killed the process mid-reply, so the call, paid
-- for, was never logged, and the rest of the reply was still generated.
-- Now the call is canceled and logged, and the process then ends by
-- SIGPIPE as before (exit 141, nothing on stderr).
local function catch_term ()
  local ok, uv = pcall(require, "luv")
  if not ok then return nil end
  local term = { uv = uv, handle = uv.new_signal(), pipe_handle = uv.new_signal(), got = false }
  local function cancel () if term.req then pcall(term.req.cancel, term.req) end end
  term.handle:start("sigterm", function () term.got = "sigterm"; cancel() end)
  term.pipe_handle:start("sigpipe", function () term.got = term.got or "sigpipe"; cancel() end)
  return term
end

-- Ends the process by the SIGTERM (or SIGPIPE) it was sent, once its
-- handler is gone (libuv then gives the signal its default action back):
-- exit 143 (141).
local function term_caught (term, client)
  if not term then return end
  term.uv.run("nowait")                  -- (a signal that came as the call ended)
  term.handle:close()
  term.pipe_handle:close()
  term.uv.run("nowait")                  -- (the handles closed: the default actions back)
  if not term.got then return end
  if term.got == "sigterm" then io.stdout:flush() end
  client:close()
  term.uv.kill(term.uv.os_getpid(), term.got)
  os.exit(term.got == "sigterm" and 143 or 141)
end

-- A chat that Ctrl-C cancels (the reply so far stays printed and is
-- logged with status "canceled"): res, err, canceled.
local function chat_interruptible (client, params, hold)
  local req = client:chat_async(params)
  hold.req = req
  return common.wait_interruptible(client, req)
end

-- A strategy run (--best-of, --vote) that Ctrl-C cancels, as a chat: the
-- strategy runs as a task, its future waited for with Ctrl-C caught (the
-- interpreter's own SIGINT would raise "interrupted!" anywhere inside it).
-- Returns res, shown (or err), extra, canceled.
local function strategy_interruptible (args, client, params, term)
  if params.n then common.usage("-n and --best-of/--vote exclude each other") end
  local best_of, vote = positive(args.best_of, "--best-of", MAX_CANDIDATES),
    positive(args.vote, "--vote", MAX_CANDIDATES)
  if best_of and vote then common.usage("--best-of and --vote exclude each other") end
  local out = {}
  local f = future.run(client._loop, function ()
    -- What the strategy raises (the library refusing a value of the user's:
    -- -o temperature=hot, text that is not UTF-8) is raised again below, out
    -- of the task, so that main reports it as it does for a plain prompt (a
    -- usage error, exit 2) rather than as a failure of "the strategy".
    local ok, e = task.pcall(function () out[1], out[2], out[3] = run_strategy(args, client, params) end)
    if not ok then out.raised = e end
    return true
  end, { label = "strategy", what = "the strategy" })
  if term then term.req = f end
  local ok, err, canceled = common.wait_interruptible(client, f)
  if out.raised ~= nil then error(out.raised, 0) end
  if not ok then return nil, err, { strategy = best_of and "best_of" or "vote", n = best_of or vote }, canceled end
  return out[1], out[2], out[3]
end

-- The piped stdin; with a word "-" in the prompt, stdin even when it is a
-- terminal (`aigc -` there reads what is typed, up to Ctrl-D).
local function prompt_stdin (args)
  local stdin = common.piped_stdin()
  for _, w in ipairs(args.prompt or {}) do
    if w == "-" and stdin == nil then return io.stdin:read("*a") end
  end
  return stdin
end

--- Runs the prompt command.
-- @tparam table args parsed arguments
-- @treturn integer exit code
function M.run (args)
  -- (alone it was ignored: one answer, no judge, and nothing said)
  if args.judge and not args.best_of then common.usage("--judge goes with --best-of") end
  local config = common.config()
  local client, secrets, endpoint = common.client(config, args.endpoint)
  local log = common.open_log(config, args)
  local stdin = prompt_stdin(args)

  local cid, parent, history, model
  local conv = common.continued(log, args)
  if conv then cid, parent, history, model = conv.id, conv.leaf_id, conv.messages, conv.model end
  local params = M.build_params(args, config, endpoint, stdin, history, model)

  local t0 = aigc.now()
  local strategy_run = args.best_of or args.vote
  local streamed = {}
  local res, err, shown, extra, canceled
  local term = catch_term()
  local hold = term or {}   -- (the call, once made: `req`)
  if strategy_run then
    res, shown, extra, canceled = strategy_interruptible(args, client, params, term)
    if not res then err = shown end
  else
    local stream = not (args.no_stream or args.json or params.schema or (params.n and params.n > 1))
    local flush
    if stream then params.stream, flush = common.stream_out(streamed, function () return hold.req end) end
    res, err, canceled = chat_interruptible(client, params, hold)
    if flush then flush() end   -- (the streamed reply's last word, held to be scrubbed whole)
    params.stream = nil
  end

  if log then
    local _, lerr = log:record_call(params, res, err, {
      started = t0, conversation_id = cid or promptlog.new_id(), parent_id = parent, leaf = true,
      source = "cli", template = args.template, client = client, secrets = secrets, extra = extra,
      partial = #streamed > 0 and table.concat(streamed) or nil,
    })
    if lerr then common.note("aigc: warning: not logged: " .. tostring(lerr.message)) end
    log:close()
  end
  term_caught(term, client)

  if not res then
    if #streamed > 0 then common.out("\n") end
    client:close()
    if canceled then common.fail("aigc: canceled", 130) end
    if common.out_error then common.fail("aigc: cannot write the output: " .. common.out_error) end
    common.fail(common.call_error(err))
  end
  if #streamed > 0 then
    if not table.concat(streamed):find("\n$") then common.out("\n") end
    tool_calls_shown(res.choices and res.choices[1])
  elseif strategy_run then
    if args.json then common.print_json(shown) else common.out(shown.text .. "\n") end
  elseif args.json then
    common.print_json(res)
  elseif params.schema and not (params.n and params.n > 1) then
    common.print_json(res.parsed)
  elseif params.schema then   -- (-n N: each choice's parsed reply, a JSON line each; it printed the first only)
    -- (a choice after the first whose reply did not parse has none: null)
    for _, choice in ipairs(res.choices) do
      if choice.parsed == nil then common.print_json(aigc.null) else common.print_json(choice.parsed) end
    end
  elseif params.n and params.n > 1 then
    for i, choice in ipairs(res.choices) do
      if i > 1 then common.out("---\n") end
      local text = choice.message and choice.message.content
      text = type(text) == "string" and text or ""
      if text ~= "" or not tool_calls_shown(choice) then common.out(text .. (text:find("\n$") and "" or "\n")) end
    end
  elseif (res.text or "") ~= "" or not tool_calls_shown(res.choices and res.choices[1]) then
    local text = res.text or ""
    common.out(text .. (text:find("\n$") and "" or "\n"))
  end
  client:close()
  return 0
end

return M
