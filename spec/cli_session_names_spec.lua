-- The names of the sessions the specs start on tmux (each busted run has a
-- server of its own now, `cli.TMUX`; it was one for every run on the
-- machine, the lanes of `make test` side by side). cli_probe_spec named its session "probe"
-- .. os.time() .. math.random(1e6), and math.random's first number is the
-- same in every process of Lua 5.1-5.3 and LuaJIT (one seed): two lanes
-- running that test in the same second named their sessions alike, and
-- the second failed "duplicate session". cli.session_name, which the
-- terminals of cli.terminal take their names from too, is used now.
local luachild = require "luachild"

local NAME = [[
  local cli = require "cli"
  io.write(os.time(), " ", cli.session_name("probe"), " ", math.random(1e6))
]]

describe("cli.session_name", function ()
  it("differs between two runs started in the same second (math.random's first number alike)", function ()
    local tried, same = 0
    repeat   -- (two children started at once: again if a second began between them)
      tried = tried + 1
      local a = luachild.run(NAME, { background = true, timeout = 60 })
      local b = luachild.run(NAME, { background = true, timeout = 60 })
      local ra, rb = a:wait(60), b:wait(60)
      assert.equal(0, ra.status, ra.stderr)
      assert.equal(0, rb.status, rb.stderr)
      local ta, name_a = ra.stdout:match("^(%d+) (%S+) %d+$")
      local tb, name_b = rb.stdout:match("^(%d+) (%S+) %d+$")
      assert.is_string(name_a, ra.stdout)
      assert.is_string(name_b, rb.stdout)
      assert.matches("^probe", name_a)
      same = ta == tb
      if same then assert.are_not.equal(name_a, name_b) end
    until same or tried == 5
    assert.is_true(same, "no two children started in the same second in 5 tries")
  end)
end)
