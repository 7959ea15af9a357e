--- `aigc models`: the models an endpoint serves.
--
-- @module aigc.cli.models

local argparse = require "argparse"
local common = require "aigc.cli.common"

local M = {}

--- The parser of `aigc models`.
-- @treturn table argparse parser
function M.parser ()
  local p = argparse("aigc models", "List the models of the endpoint (GET /models).")
  p:help_max_width(100):help_description_margin(28)
  p:option("-e --endpoint", "A named endpoint (config file; built in: local, openai).")
  p:flag("--json", "The whole response as JSON.")
  return p
end

--- Runs `aigc models`.
-- @tparam table args
-- @treturn integer exit code
function M.run (args)
  local client = common.client(common.config(), args.endpoint)
  local res, err = client:models()
  client:close()
  if not res then common.fail(common.call_error(err)) end
  if args.json then common.print_json(res); return 0 end
  local ids = {}
  for _, m in ipairs(type(res.data) == "table" and res.data or {}) do
    if type(m) == "table" and type(m.id) == "string" then ids[#ids + 1] = m.id end
  end
  table.sort(ids)
  for _, id in ipairs(ids) do common.out(id .. "\n") end
  return 0
end

return M
