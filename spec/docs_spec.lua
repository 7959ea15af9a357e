-- `make docs`: the LDoc reference of every public module builds, with no
-- warning (an undocumented argument, a bad tag, a module with no items,
-- Markdown missing). Warnings another lane must fix are listed in KNOWN by
-- their text and reported as pending (with the request that names them);
-- the spec fails on any other warning, and on a KNOWN one that is gone
-- (so the list cannot rot).

local proc = require "procutil"

local KNOWN = {
}

local have_ldoc = proc.sh("command -v ldoc >/dev/null && command -v lua5.1 >/dev/null")

local describe_docs = have_ldoc and describe or pending

describe_docs("make docs", function ()
  local out
  setup(function ()
    local _
    -- (from scratch: LDoc leaves the pages of a module no longer listed)
    _, out = proc.sh("rm -rf build/docs && make -s --no-print-directory docs")
  end)

  it("writes the reference of every public module", function ()
    -- (modules/ or classes/, as each file's @module or @classmod says;
    -- the devserver's file names no module, so LDoc calls it "devserver")
    for _, m in ipairs { "aigc", "aigc.client", "aigc.conversation", "aigc.strategy", "aigc.tools", "aigc.schema",
                         "aigc.template", "aigc.promptlog", "aigc.runner", "aigc.ratelimit", "aigc.sentences",
                         "aigc.media", "aigc.files", "devserver" } do
      local found = proc.exists("build/docs/modules/" .. m .. ".html")
                    or proc.exists("build/docs/classes/" .. m .. ".html")
      assert.is_true(found, m .. " is missing:\n" .. out)
    end
    local runner = proc.read_file("build/docs/modules/aigc.runner.html")
    assert.matches("<code>", runner)        -- Markdown was rendered (not plain text)
    -- the methods installed on the client at load time are listed (issue 15)
    local media, files = proc.read_file("build/docs/modules/aigc.media.html"),
                         proc.read_file("build/docs/modules/aigc.files.html")
    for _, m in ipairs { "images_generate", "images_edit", "images_variation", "speech", "transcribe",
                         "translate", "moderate", "download" } do
      assert.matches("Client:" .. m, media, 1, true)
    end
    for _, m in ipairs { "files_upload", "files_list", "files_retrieve", "files_content", "files_delete",
                         "embeddings" } do
      assert.matches("Client:" .. m, files, 1, true)
    end
  end)

  it("gives no warning", function ()
    local unexpected, seen = {}, {}
    for line in out:gmatch("[^\n]+") do
      if not line:find("^reading configuration") and not line:find("^output written")
         and not line:find("^format: using built%-in markdown") then
        local file, rest = line:match("^(.-):%d+: (.*)$")
        local key = file and (file:gsub("^.*/lua/aigc/", "lua/aigc/") .. ": " .. rest) or line
        if KNOWN[key] then seen[key] = true else unexpected[#unexpected + 1] = line end
      end
    end
    assert.same({}, unexpected)
    for key, why in pairs(KNOWN) do
      if not seen[key] then
        error("the known warning is gone: remove it from KNOWN in spec/docs_spec.lua: " .. key)
      end
      pending("known LDoc warning (" .. why .. "): " .. key)
    end
  end)
end)
