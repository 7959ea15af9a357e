--- Standard base64 with padding, for specs' oracles (no aigc: independent
-- of the code under test). Runs on Lua 5.1-5.4 and LuaJIT (no bit operators).
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
return function (s)
  return (s:gsub("..?.?", function (g)
    local a, b, c = g:byte(1, 3)
    local n, out = a * 65536 + (b or 0) * 256 + (c or 0), {}
    for i = 1, 4 do
      local d = math.floor(n / 64 ^ (4 - i)) % 64
      out[i] = B64:sub(d + 1, d + 1)
    end
    return table.concat(out):sub(1, #g + 1) .. ("="):rep(3 - #g)
  end))
end
