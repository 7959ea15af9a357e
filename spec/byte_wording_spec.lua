-- Messages placed a byte two ways: "(byte 5)", "(byte 4 of '...' is not
-- valid UTF-8)" in the CLI, "at byte 5" in the core and elsewhere. One
-- form now, the most common one: "invalid UTF-8 at byte N" / "at byte N",
-- bytes counted from 1.

describe("a byte's position in a message", function ()
  it("is worded 'at byte N' in the C core and the Lua layer, never '(byte N'", function ()
    local list = io.popen("ls src/*.c lua/aigc/*.lua lua/aigc/*/*.lua")
    local files = 0
    for path in list:lines() do
      files = files + 1
      local n = 0
      for line in io.lines(path) do
        n = n + 1
        local code = line:gsub("^%s*%-%-.*", ""):gsub("^%s*/?%*.*", "")
        assert.is_nil(code:find("%(byte [%%\"%d]"), path .. ":" .. n .. ": " .. line)
      end
    end
    list:close()
    assert.is_true(files > 50)
  end)
end)
