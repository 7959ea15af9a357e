-- check-globals.lua [OBJDIR] — aigc keeps no mutable C global (issue 13
-- item 3): a host may run aigc in several lua_States on several threads at
-- once, and they must share nothing but what is written once before any of
-- them runs. Reads the symbol tables of OBJDIR/*.o (default build/obj, the
-- objects of `make`) with objdump and fails on any data object in a
-- writable section (.data, .bss and their sub-sections; .data.rel.ro is
-- read-only once relocated, .rodata always), except the ones listed below,
-- each with why it is safe.
--   lua5.4 scripts/check-globals.lua [build/obj]   (exit 1: a finding)
local objdir = arg[1] or "build/obj"

-- file -> symbol -> why it is safe
local ALLOWED = {
  ["core.o"] = {
    curl_once = "pthread_once's flag: curl_global_init runs once, whatever thread gets there first",
    curl_init_result = "written inside that pthread_once only, read after it",
    curl_version_text = "written inside that pthread_once only, read after it",
    curl_http2 = "written inside that pthread_once only, read after it",
  },
  ["util.o"] = {
    opt_filter_once = "pthread_once's flag: the call options' filter is made once, whatever thread gets there first",
    opt_filter = "written inside that pthread_once only, read after it",
  },
  ["json.o"] = {
    c_locale_once = "pthread_once's flag: the C numeric locale is made once, whatever thread gets there first",
    c_locale = "written inside that pthread_once only, read after it (each thread uselocale()s it)",
  },
}

local function writable (section)
  if section:find("^%.data%.rel%.ro") then return false end
  return section:find("^%.data") ~= nil or section:find("^%.bss") ~= nil
end

local files = {}
local p = assert(io.popen("ls " .. objdir .. "/*.o 2>/dev/null"))
for f in p:lines() do files[#files + 1] = f end
p:close()
if #files == 0 then
  io.stderr:write("globals: no objects in " .. objdir .. " (run make first)\n")
  os.exit(1)
end

local problems, seen = 0, 0
for _, f in ipairs(files) do
  local base = f:match("[^/]+$")
  local dump = assert(io.popen("objdump -t " .. f))
  for line in dump:lines() do
    -- "0000000000000000 l     O .bss	0000000000000004 name"
    local section, name = line:match("^%x+%s.-%sO%s+(%S+)%s+%x+%s+(%S+)$")
    if not section then
      section, name = line:match("^%x+%s.-%sO%s+(%S+)%s+%x+%s+%.hidden%s+(%S+)$")
    end
    if section and writable(section) then
      seen = seen + 1
      local why = ALLOWED[base] and ALLOWED[base][(name:gsub("%.%d+$", ""))]
      if why then
        print(("globals: %s %s (%s): allowed, %s"):format(base, name, section, why))
      else
        problems = problems + 1
        print(("globals: %s %s (%s): a mutable C global; lua_States on other threads would share it")
              :format(base, name, section))
      end
    end
  end
  dump:close()
end
if problems > 0 then
  print(("globals: %d problem(s)"):format(problems))
  os.exit(1)
end
print(("globals: ok (%d objects, %d writable data symbol(s), all allowed)"):format(#files, seen))
