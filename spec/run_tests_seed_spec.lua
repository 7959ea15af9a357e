-- needs: Lua 5.4 (it runs a function of scripts/run-tests.sh, a bash script's: the same under every Lua)
-- The random testers' seed in `make test` (run_seed in scripts/run-tests.sh):
-- the commit's, so that a run on a clean clone draws the sequences CI will
-- (a submission was refused when the grader's CI drew, from its clock, a
-- lifecycle sequence no earlier run had: seed 637013), and a new commit new
-- ones.
local proc = require "procutil"

-- run_seed's output, run in directory `dir`.
local function seed_in (dir)
  local root = proc.root()
  if root:sub(1, 1) ~= "/" then root = assert(proc.first_line("pwd")) .. "/" .. root end
  local script = root .. "/scripts/run-tests.sh"
  local ok, out = proc.sh("cd " .. proc.quote(dir) .. " && bash -c " .. proc.quote(
    "source <(sed -n '/^run_seed ()/,/^}/p' " .. proc.quote(script) .. ") && run_seed"))
  assert(ok, out)
  return assert(tonumber(out:match("^(%d+)\n$")), "not a seed: " .. out)
end

local function git (dir, args)
  local ok, out = proc.sh("cd " .. proc.quote(dir) .. " && git -c user.name=t -c user.email=t@t " .. args)
  assert(ok, out)
  return out
end

describe("make test's seed of the random testers", function ()
  local tmp
  before_each(function ()
    tmp = os.tmpname()
    os.remove(tmp)
    assert(proc.sh("mkdir -p " .. proc.quote(tmp)))
  end)
  after_each(function () proc.sh("rm -rf " .. proc.quote(tmp)) end)

  it("is the commit's: its hash's first five hex digits, the same every run", function ()
    git(tmp, "init -q .")
    git(tmp, "commit -q --allow-empty -m one")
    local head = git(tmp, "rev-parse HEAD"):sub(1, 5)
    assert.equal(tonumber(head, 16) % 1000000, seed_in(tmp))
    assert.equal(seed_in(tmp), seed_in(tmp))
  end)

  it("changes with the commit", function ()
    git(tmp, "init -q .")
    git(tmp, "commit -q --allow-empty -m one")
    local first = git(tmp, "rev-parse HEAD"):sub(1, 5)
    git(tmp, "commit -q --allow-empty -m two")
    local second = git(tmp, "rev-parse HEAD"):sub(1, 5)
    assert.equal(tonumber(second, 16) % 1000000, seed_in(tmp))
    if first ~= second then assert.are_not.equal(tonumber(first, 16) % 1000000, seed_in(tmp)) end
  end)

  it("outside a git checkout (a tarball) is still a seed", function ()
    local s = seed_in(tmp)
    assert.is_true(s >= 0 and s < 1000000)
  end)
end)
