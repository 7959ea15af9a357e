-- A judge's reply read for its score (`judge.score_of`): the CPU of a reply
-- of 20,000 twenty-digit numbers against one of 20,000 twenty-letter words,
-- each ending "8/10". The digits should cost about what the words cost: the
-- 'N/D' patterns tried at every byte once backtracked over each run of
-- digits from each of its digits (5 s a MB, ~30x the words; d79e1ee). The
-- work is inside string.match, where no debug hook counts and nothing is
-- allocated, so a test cannot bound it without a time; it is measured here,
-- the smallest of ROUNDS tries each.
--
--   lua5.4 bench/judge_bench.lua [ROUNDS]      (default 5)
-- Not run by `make bench`: run it by hand from the repo root after `make`.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "./?.so;" .. package.cpath
local judge = require "aigc.judge"
local ROUNDS = tonumber(arg[1]) or 5

local function cpu_of (reply)
  local best = math.huge
  for _ = 1, ROUNDS do
    local t0 = os.clock()
    assert(judge.score_of(reply) == 8)
    best = math.min(best, os.clock() - t0)
  end
  return best
end

local digits = cpu_of(string.rep("12345678901234567890 ", 20000) .. "8/10")
local words = cpu_of(string.rep("abcdefghijklmnopqrst ", 20000) .. "8/10")
print(("judge.score_of on 420 KB: digits %.3f s, words %.3f s, ratio %.1fx (~2x; the old patterns ~30x)")
  :format(digits, words, digits / words))
