--- `aigc templates`: list, show and edit prompt templates.
--
-- @module aigc.cli.templates

local argparse = require "argparse"
local common = require "aigc.cli.common"
local config_mod = require "aigc.cli.config"
local template = require "aigc.template"

local M = {}

--- A new template's text (what `edit` opens for a name that has none).
M.SKELETON = [[
-- aigc template (a Lua table; data only). {{name}} is a variable: aigc -t NAME -p name=value.
-- {{input}} is the prompt's text (its arguments and stdin).
{
  description = "Summarise a text",
  system = "You are a concise assistant.",
  prompt = "Summarise in {{lang}}:\n\n{{input}}",
  defaults = { lang = "English" },
  -- model = "gpt-4o-mini",
  -- params = { temperature = 0.2 },
  -- schema = { type = "object", properties = { summary = { type = "string" } }, required = { "summary" } },
}
]]

--- The parser of `aigc templates`.
-- @treturn table argparse parser
function M.parser ()
  local p = argparse("aigc templates", "Prompt templates: files in $AIGC_HOME/templates (NAME.lua or NAME.json).")
  p:help_max_width(100):help_description_margin(28)
  p:argument("action", "list | show NAME | edit NAME | path"):args("?")
  p:argument("name", "The template."):args("?")
  return p
end

local function edit (dir, name)
  if not template.valid_name(name) then common.usage("invalid template name '" .. name .. "'") end
  config_mod.mkdir(dir)
  local path = template.path_of(dir, name)
  local f = io.open(path, "rb")
  local new = f == nil   -- (a skeleton written now: removed again if the edit fails unsaved)
  if f then f:close() else
    -- (a templates directory that cannot be made or written: one line, not a traceback)
    local why
    f, why = io.open(path, "wb")
    if not f then common.fail("aigc: cannot make the template: " .. tostring(why)) end
    f:write(M.SKELETON)
    f:close()
  end
  local editor = config_mod.env("VISUAL") or config_mod.env("EDITOR") or "vi"
  local ok = os.execute(editor .. " '" .. path:gsub("'", "'\\''") .. "'")
  local text = template.read_file(path)
  if ok ~= true and ok ~= 0 then
    if new and text == M.SKELETON then
      os.remove(path)
      common.fail("aigc: the editor (" .. editor .. ") failed; no template '" .. name .. "' made")
    end
    common.fail("aigc: the editor (" .. editor .. ") failed")
  end
  if not text then common.fail("aigc: the file is gone (" .. path .. "): no template '" .. name .. "' saved") end
  local t, err = template.load(path)
  if not t then common.fail("aigc: " .. tostring(err.message) .. "\n(the file is kept: aigc templates edit "
                            .. name .. " again)") end
  common.note("aigc: template '" .. name .. "' saved: " .. path)
  return 0
end

--- Runs `aigc templates`.
-- @tparam table args
-- @treturn integer exit code
function M.run (args)
  local dir = config_mod.templates_dir()
  local action = args.action or "list"
  -- (`aigc templates list summary` listed them all, the name ignored without a word)
  if (action == "path" or action == "list") and args.name then
    common.usage("aigc templates " .. action .. " takes no NAME (aigc templates show " .. args.name .. ")")
  end
  if action == "path" then common.out(dir .. "\n"); return 0 end
  if action == "list" then
    local list = template.list(dir)
    for _, t in ipairs(list) do
      common.out(t.name .. (t.description and ("  " .. t.description) or "")
                 .. (t.error and ("  [broken: " .. t.error .. "]") or "") .. "\n")
    end
    -- (a terminal showed a blank)
    if #list == 0 then common.note("aigc: no templates in " .. dir .. " (aigc templates edit NAME makes one)") end
    return 0
  end
  if action ~= "edit" and action ~= "show" then
    common.usage("aigc templates: unknown action '" .. action .. "' (list, show NAME, edit NAME, path)")
  end
  if not args.name then common.usage("aigc templates " .. action .. " needs a NAME") end
  if action == "edit" then return edit(dir, args.name) end
  -- show: the file as it is, a broken one too (`list` says "broken", and
  -- show refused to show what to fix), its error after it
  local path = template.path_of(dir, args.name)
  local text, rerr, code = nil, nil, nil
  if path then text, rerr, code = template.read_file(path, template.MAX_BYTES, "a template") end
  if code == "limit" then common.fail("aigc: " .. rerr) end
  if not text then common.template(args.name) end   -- (its errors: an invalid name, none by that name)
  common.out(text)
  local ok, err = template.load(path)
  if not ok then common.fail("aigc: " .. tostring(type(err) == "table" and err.message or err)) end
  return 0
end

return M
