-- spec/contract/steady.lua installs Steady with `npm ci` on first use. npm's
-- cache defaulted to ~/.npm: with a read-only HOME (a CI runner, a sandbox)
-- and no spec/contract/node_modules yet, `npm ci` failed with EPERM on
-- ~/.npm and every contract test errored. The cache is now
-- <root>/build/npm-cache (unless $npm_config_cache names one).
--
-- A real `npm ci`, offline: a checkout-like folder whose package depends on
-- a local tarball providing a `steady` bin, installed from a child process
-- whose HOME cannot be written.
local luachild = require "luachild"
local write = require("cli").write
local proc = require "procutil"

local quote = proc.quote

-- A HOME npm cannot make ~/.npm in (root writes a chmod 500 folder: then a
-- read-only file system's folder), or nil.
local function unwritable_home (tmp)
  local mine = tmp .. "/ro-home"
  assert(proc.execute("mkdir -p " .. quote(mine) .. " && chmod 500 " .. quote(mine)))
  for _, home in ipairs { mine, "/sys/kernel", "/proc/sys" } do
    if proc.execute("test -d " .. quote(home)) and not proc.execute("mkdir " .. quote(home .. "/.npm")
                                                                   .. " 2>/dev/null") then
      return home
    end
    os.execute("rmdir " .. quote(home .. "/.npm") .. " 2>/dev/null")
  end
  return nil
end

describe("contract: npm ci's cache", function ()
  local tmp

  before_each(function ()
    tmp = os.tmpname()
    os.remove(tmp)
    assert(proc.execute("mkdir -p " .. quote(tmp .. "/root/spec/contract") .. " " .. quote(tmp .. "/dep/package/bin")))
  end)

  after_each(function ()
    if tmp and tmp:find("^/tmp/") then os.execute("chmod -R u+w " .. quote(tmp) .. "; rm -rf " .. quote(tmp)) end
  end)

  it("is under the build directory: npm ci works with a read-only HOME", function ()
    if not proc.sh("command -v npm >/dev/null 2>&1") then pending("no npm") return end
    local home = unwritable_home(tmp)
    if not home then pending("no folder here that this user cannot write") return end
    -- the dependency: a tarball npm packs as it would (package/...), with a `steady` bin
    write(tmp .. "/dep/package/package.json",
          '{ "name": "edges-steady", "version": "1.0.0", "bin": { "steady": "bin/steady" } }\n')
    write(tmp .. "/dep/package/bin/steady", "#!/bin/sh\necho steady\n")
    local dir = tmp .. "/root/spec/contract"
    assert(proc.execute("chmod 755 " .. quote(tmp .. "/dep/package/bin/steady") .. " && tar -czf "
                        .. quote(dir .. "/edges-steady-1.0.0.tgz") .. " -C " .. quote(tmp .. "/dep") .. " package"))
    write(dir .. "/package.json",
          '{ "name": "c", "private": true, "dependencies": { "edges-steady": "file:edges-steady-1.0.0.tgz" } }\n')
    -- its lock, made with a cache of its own (the install below must not find this one)
    assert(proc.execute("cd " .. quote(dir) .. " && npm install --package-lock-only --offline --no-audit --no-fund "
                        .. "--cache " .. quote(tmp .. "/lock-cache") .. " >/dev/null 2>&1"))
    local r = luachild.run([[
      local steady = dofile("spec/contract/steady.lua")
      local ok, bin = pcall(steady.install, arg[1])
      print(ok and "installed " .. bin or "failed " .. tostring(bin))
    ]], { args = { dir }, timeout = 120,
          env = { HOME = home, npm_config_offline = "true", npm_config_update_notifier = "false" } })
    assert.equal(0, r.status, r.stderr)
    assert.equal("installed " .. dir .. "/node_modules/.bin/steady\n", r.stdout)
    assert.truthy(proc.execute("test -d " .. quote(tmp .. "/root/build/npm-cache/_cacache")),
                  "npm's cache is under the build directory")
    assert.equal("steady\n", (proc.first_line(quote(dir .. "/node_modules/.bin/steady")) or "") .. "\n")
  end)
end)
