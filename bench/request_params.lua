-- The request every Lua client of the benchmark sends, as a params table
-- (floor.c's build_body: two messages, a few settings). One copy, so the
-- clients cannot drift apart. A client finds it next to itself:
--   package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
return function (i)
  return {
    model = "gpt-4o-mini",
    messages = {
      { role = "system", content = "You are a helpful assistant." },
      { role = "user", content = "Say hello to request " .. i .. "." },
    },
    temperature = 0.7,
    max_tokens = 128,
  }
end
