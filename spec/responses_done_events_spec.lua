-- Every ".done" event of a delta/done pair the accumulator merges
-- (src/raccum.c) carries the final value: a stream cut after it, before
-- its item's response.output_item.done, keeps that value in err.partial.
-- response.shell_call_output_content.done was not merged: the shell
-- output (and its outcome) was lost. Over real HTTP on loopback (a
-- one-shot server: spec/support/oneshot.lua).
local aigc = require "aigc"

local A = aigc.array

-- The SSE body of a list of events (each a table with its `type`), numbered from 0.
local sse = require("sse").numbered

local CREATED = { type = "response.created",
  response = { id = "resp_1", object = "response", model = "m", status = "in_progress", output = A {} } }

-- The partial response of a stream of `events` after response.created,
-- cut there (no response.completed).
local function partial_of (events)
  local list = { CREATED }
  for _, e in ipairs(events) do list[#list + 1] = e end
  local c, done = require("oneshot").sse_client(aigc, sse(list), nil, { model = "m" })
  local res, err = c:respond { input = "x", stream = function () end }
  done()
  assert.is_nil(res)
  assert.equal("stream", err.kind)
  return err.partial
end

local function at (t, path)
  for _, k in ipairs(path) do
    if type(t) ~= "table" then return nil end
    t = t[k]
  end
  return t
end

describe("Responses done events", function ()
  local OUTCOME = { type = "exit", exit_code = 0 }
  for _, case in ipairs {
    { "output_text.done", { content_index = 0, text = "Paris." }, { "content", 1, "text" }, "Paris." },
    { "refusal.done", { content_index = 0, refusal = "No." }, { "content", 1, "refusal" }, "No." },
    { "reasoning_text.done", { content_index = 0, text = "thinking" }, { "content", 1, "text" }, "thinking" },
    { "reasoning_summary_text.done", { summary_index = 0, text = "sum" }, { "summary", 1, "text" }, "sum" },
    { "function_call_arguments.done", { arguments = '{"a":1}' }, { "arguments" }, '{"a":1}' },
    { "mcp_call_arguments.done", { arguments = '{"b":2}' }, { "arguments" }, '{"b":2}' },
    { "custom_tool_call_input.done", { input = "raw" }, { "input" }, "raw" },
    { "code_interpreter_call_code.done", { code = "print(1)" }, { "code" }, "print(1)" },
    { "shell_call_command.done", { command_index = 0, command = "pwd" }, { "action", "commands", 1 }, "pwd" },
    { "shell_call_output_content.done",
      { command_index = 0, output = { { stdout = "/home\n", stderr = "", outcome = OUTCOME } } },
      { "output", 1 }, { stdout = "/home\n", stderr = "", outcome = OUTCOME } },
  } do
    local name, fields, path, want = case[1], case[2], case[3], case[4]
    it("a stream cut after response." .. name .. " keeps its value in err.partial", function ()
      local ev = { type = "response." .. name, item_id = "it_1", output_index = 0 }
      for k, v in pairs(fields) do ev[k] = v end
      local partial = partial_of { ev }
      assert.same(want, at(partial.output[1], path))
    end)
  end

  it("shell output: the deltas' stdout stays, the done event adds the outcome, at its command_index", function ()
    local partial = partial_of {
      { type = "response.output_item.added", output_index = 0,
        item = { id = "sho_1", type = "shell_call_output", call_id = "call_1", output = A {} } },
      { type = "response.shell_call_output_content.delta", item_id = "sho_1", output_index = 0,
        command_index = 1, delta = { stdout = "total 0\n" } },
      { type = "response.shell_call_output_content.done", item_id = "sho_1", output_index = 0,
        command_index = 1, output = { { stdout = "total 0\n", stderr = "", outcome = { type = "timeout" } } } },
    }
    local out = partial.output[1]
    assert.equal("shell_call_output", out.type)
    assert.equal("call_1", out.call_id)
    assert.equal(aigc.null, out.output[1])   -- (command 0 said nothing yet)
    assert.same({ stdout = "total 0\n", stderr = "", outcome = { type = "timeout" } }, out.output[2])
  end)

  it("a shell output done event whose list is not one content changes nothing (output_item.done completes it)",
     function ()
    local partial = partial_of {
      { type = "response.shell_call_output_content.delta", item_id = "sho_1", output_index = 0,
        command_index = 0, delta = { stdout = "a" } },
      { type = "response.shell_call_output_content.done", item_id = "sho_1", output_index = 0,
        command_index = 0, output = { { stdout = "a", stderr = "" }, { stdout = "b", stderr = "" } } },
    }
    assert.same({ { stdout = "a" } }, partial.output[1].output)
  end)
end)
