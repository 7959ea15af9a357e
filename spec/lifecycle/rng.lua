--- The lifecycle tester's PRNG (xorshift64*), independent of math.random,
-- so that a seed means the same sequence in every build; and the seed of
-- each sequence of a run. 64-bit integer arithmetic: Lua 5.3+ (the runner,
-- spec/lifecycle/run.lua, runs on 5.4; the children, which may run under
-- LuaJIT or 5.1, never draw). Used through spec/lifecycle/gen.lua.

local M = {}

--- A generator seeded with `seed`: r.int, r.chance, r.pick, r.weighted.
function M.new (seed)
  local s = seed ~ 0x2545F4914F6CDD1D
  if s == 0 then s = 1 end
  local r = {}
  local function next64 ()
    s = s ~ (s >> 12)
    s = s ~ (s << 25)
    s = s ~ (s >> 27)
    return s * 0x2545F4914F6CDD1D
  end
  --- An integer in [lo, hi].
  function r.int (lo, hi)
    return lo + ((next64() >> 1) % (hi - lo + 1))
  end
  --- true with probability p.
  function r.chance (p)
    return ((next64() >> 11) / 9007199254740992.0) < p
  end
  --- One of the list's values.
  function r.pick (list)
    return list[r.int(1, #list)]
  end
  --- A key of `weights` ({ name = weight }), drawn by weight; keys in sorted
  -- order so that the draw does not depend on table iteration order.
  function r.weighted (weights)
    local names, total = {}, 0
    for k, w in pairs(weights) do
      if w > 0 then names[#names + 1] = k; total = total + w end
    end
    table.sort(names)
    local x = r.int(1, total)
    for _, k in ipairs(names) do
      x = x - weights[k]
      if x <= 0 then return k end
    end
    return names[#names]
  end
  return r
end

--- The seed of sequence `i` of a run started with `seed`.
function M.sequence_seed (seed, i)
  local h = (seed * 0x9E3779B1 + i * 0x85EBCA77) & 0x7fffffffffff
  return h ~ (h >> 17)
end

return M
