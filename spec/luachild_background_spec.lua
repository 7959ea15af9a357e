-- spec/support/luachild.lua: a background child is killed at its timeout
-- like a foreground one. It was not (the option was ignored there), so a
-- child whose test failed before its wait lived on after the test run: a
-- one-shot server (spec/support/oneshot.lua) that nobody connected to
-- blocks in accept() for ever.

local luachild = require "luachild"
local proc = require "procutil"
local socket = require "socket"

describe("a background luachild", function ()
  it("is killed at its timeout though nobody waits for it", function ()
    local child = luachild.run('require("socket").sleep(120)', { background = true, timeout = 1 })
    local waited = false
    -- (its files; a kill if it still ran. Not after the wait below: a second
    -- wait finds no exit status and waits out its second, then kills)
    finally(function () if not waited then child:wait(0) end end)
    assert.is_number(child.pid)
    local deadline = socket.gettime() + 30
    while proc.alive(child.pid) and socket.gettime() < deadline do socket.sleep(0.1) end
    assert.is_false(proc.alive(child.pid), "the child outlived its timeout of 1 s")
    local r = child:wait(10)
    waited = true
    assert.equal(124, r.status)   -- (killed by the timeout)
  end)
end)
