-- A prompt workflow in a script: a template run over a dataset of cases with
-- assertions (aigc.runner), every call logged into the same SQLite history
-- as the `aigc` command (aigc.promptlog), then a search of that history.
-- The command line does the same with:
--   AIGC_TEMPLATES=examples/workflow aigc run examples/workflow/cases.jsonl -t capital --out results.jsonl
--
--   lua5.4 examples/prompt_workflow.lua      (OPENAI_BASE_URL: e.g. the bundled server)
local aigc = require "aigc"

local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local client = aigc.client { model = os.getenv("AIGC_MODEL") or "gpt-4o-mini" }
local template = assert(aigc.template.load(dir .. "/workflow/capital.lua"))

-- A scratch log and results file, so that the example leaves nothing behind.
local log_path, out = os.tmpname(), os.tmpname()
os.remove(out)
local log, lerr = aigc.promptlog.open(log_path)
if not log then print("(not logging: " .. tostring(lerr) .. ")") end

local summary = assert(aigc.runner.run {
  client = client, template = template, cases = dir .. "/workflow/cases.jsonl", out = out,
  concurrency = 4, log = log,
  prices = { ["gpt-4o-mini"] = { input = 0.15, output = 0.60 } },
  on_result = function (r)
    print(string.format("  %-10s %-5s %s", r.id, r.pass and "pass" or "FAIL", r.text or tostring(r.error.message)))
  end,
})
print(string.format("\n%d cases: %d passed (%.0f%%), %d tokens%s, %.2fs",
  summary.total, summary.passed, 100 * summary.pass_rate, summary.usage.total_tokens or 0,
  summary.cost and string.format(", $%.6f", summary.cost) or "", summary.elapsed))
for _, a in ipairs(summary.assertions) do
  print(string.format("  %-40s %d/%d", a.name, a.passed, a.total))
end

if log then
  print("\nThe log, searched for \"Paris\":")
  for _, row in ipairs(log:list { query = "Paris", n = 5 }) do
    print(string.format("  #%d %s -> %s (%d tokens, %d ms)", row.id, row.prompt, row.response,
                        row.total_tokens or 0, row.latency_ms or 0))
  end
  log:close()
end
os.remove(out)
for _, suffix in ipairs { "", "-wal", "-shm" } do os.remove(log_path .. suffix) end
client:close()
