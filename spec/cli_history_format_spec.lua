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
end)
