-- The REPL's history file (aigc.cli.lineinput): an input is one line,
-- escaped when it holds a newline or begins with a backslash; a file
-- written before (one entry a line, as Readline wrote it) reads as it did.
local lineinput = require "aigc.cli.lineinput"

describe("the REPL history file", function ()
  it("an input of any shape reads back as it was written", function ()
    local texts = { "plain", "two\nlines", "\\starts with a backslash", "\\", "\\\\", "a\\nb", "end\\",
                    "\\n", "x\n\\y\n", "\\\\server\\share", "\\frac{1}{2}\nsecond" }
    for _, text in ipairs(texts) do
      local line = lineinput.encode_history(text)
      assert.is_nil(line:find("\n", 1, true))
      assert.equal(text, lineinput.decode_history(line))
    end
  end)

  it("a line of a file written before that begins with a backslash keeps it", function ()
    for _, old in ipairs { "\\frac{1}{2}", "\\newcommand{\\R}{x}", "\\\\server\\share\\file.txt", "\\begin{x}" } do
      assert.equal(old, lineinput.decode_history(old))
    end
  end)

  it("trimmed to its last entries on a full disk, the file is kept whole (cut in place, it was left torn)", function ()
    local cli = require "cli"
    local luachild = require "luachild"
    local dir = cli.home()
    local path = dir .. "/history"
    local lines = {}
    for i = 1, lineinput.KEEP_LINES + 200 do lines[i] = ("entry number %05d, typed long ago"):format(i) end
    local whole = table.concat(lines, "\n") .. "\n"
    cli.write(path, whole)
    local wrapper = dir .. "/lua-full-disk"   -- (a write past `ulimit -f` fails with EFBIG, as on a full disk)
    cli.write(wrapper, "#!/bin/sh\ntrap '' XFSZ\nulimit -f 8\nexec '" .. luachild.interpreter() .. "' \"$@\"\n")
    os.execute("chmod 600 '" .. path .. "' && chmod 755 '" .. wrapper .. "'")
    local script = [[
      local reader = require("aigc.cli.lineinput").new { histfile = arg[1] }
      local added = 0
      reader.rl = { add_history = function () added = added + 1 end }
      reader:load_history()
      print(added)
    ]]
    local r = luachild.run(script, { args = { path }, lua = wrapper })
    local kept = cli.read(path)
    local again = luachild.run(script, { args = { path } })   -- (room on the disk: trimmed, its mode kept)
    local trimmed = cli.read(path)
    local p = assert(io.popen("stat -c %a '" .. path .. "'"))
    local mode = p:read("*l")
    p:close()
    cli.rmdir(dir)
    assert.equal(0, r.status, r.stderr)
    assert.equal(lineinput.KEEP_LINES .. "\n", r.stdout)
    assert.equal(#whole, #kept)
    assert.equal(whole, kept)
    assert.equal(0, again.status, again.stderr)
    assert.equal(table.concat(lines, "\n", 201) .. "\n", trimmed)
    assert.equal("600", mode)
  end)
end)
