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
    local child = luachild.run('require("socket").sleep(120)', { background = true, timeout = 2 })
    finally(function () child:wait(0) end)   -- (its files; a kill if it still ran)
    assert.is_number(child.pid)
    local deadline = socket.gettime() + 30
    while proc.alive(child.pid) and socket.gettime() < deadline do socket.sleep(0.1) end
    assert.is_false(proc.alive(child.pid), "the child outlived its timeout of 2 s")
    assert.equal(124, child:wait(10).status)   -- (killed by the timeout)
  end)
end)
