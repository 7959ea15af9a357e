-- A decoded document's Lua tables are made with the stack grown once every
-- 16 levels of nesting, not once per container (issue 17, per request), and
-- a stream's events parse into the arena block an ended reply left to the
-- client. Both must keep every value of every level, at every depth up to
-- the limit (200 levels): a stack grown too little would write past the Lua
-- stack (a crash, or ASan's heap-buffer-overflow), a block shared by two
-- parses would mix their values. Each document below has, at every level,
-- an object or an array (alternating) holding leaves of each type and the
-- next level, and is checked level by level against what was sent:
--   * aigc.json.decode at depths around each multiple of 16, and the limit;
--   * replies and streams with such a document (a stream's callback that
--     takes the chunk gets the event's tree), alternating on one client,
--     the replies large enough to leave a chain of arena blocks.

local aigc = require "aigc"
local json = aigc.json
local scripted = require "scripted"

-- The JSON text of `depth` levels (1: a leaf level alone), tagged `tag`.
local function nest (depth, tag, pad)
  local inner = '"end-' .. tag .. '"'
  for d = depth, 1, -1 do
    if d % 2 == 1 then
      inner = ('{"a":%d,"s":"%s-%d","n":null,"t":true,"f":1.5,"k":%s,"z":[%d,"x"]%s}')
        :format(d, tag, d, inner, d, pad and (',"p":"' .. pad .. '"') or "")
    else
      inner = ('[%d,"%s-%d",%s,false]'):format(d, tag, d, inner)
    end
  end
  return inner
end

-- Walks a decoded document from level `from`; returns the first level whose
-- values differ from what nest(depth, tag) sent (nil: all match).
local function wrong_level (v, depth, tag, from)
  for d = from or 1, depth do
    if d % 2 == 1 then
      if type(v) ~= "table" or v.a ~= d or v.s ~= tag .. "-" .. d or v.n ~= aigc.null or v.t ~= true
         or v.f ~= 1.5 or type(v.z) ~= "table" or v.z[1] ~= d or v.z[2] ~= "x" or #v.z ~= 2 then
        return d
      end
      v = v.k
    else
      if type(v) ~= "table" or #v ~= 4 or v[1] ~= d or v[2] ~= tag .. "-" .. d or v[4] ~= false then
        return d
      end
      v = v[3]
    end
  end
  if v ~= "end-" .. tag then return depth + 1 end
  return nil
end

describe("a decoded document nested deep", function ()
  it("keeps every level's values, around each multiple of 16 and at the limit", function ()
    for _, depth in ipairs { 1, 2, 15, 16, 17, 31, 32, 33, 47, 48, 49, 100, 199, 200 } do
      local v, err = json.decode(nest(depth, "d" .. depth))
      assert.is_nil(err)
      assert.is_nil(wrong_level(v, depth, "d" .. depth), "depth " .. depth)
    end
    -- (200 containers deep is the limit: one more is refused)
    local v, err = json.decode(nest(201, "over"))
    assert.is_nil(v)
    assert.matches("nest", err)
  end)

  it("keeps them inside a coroutine and from a deep Lua recursion", function ()
    local text = nest(200, "co")
    local co = coroutine.wrap(function () return json.decode(text) end)
    assert.is_nil(wrong_level(co(), 200, "co"))
    local function deep (n)
      if n == 0 then return json.decode(text) end
      local v = deep(n - 1)
      return v
    end
    assert.is_nil(wrong_level(deep(150), 200, "co"))
  end)
end)

describe("replies and streams nested deep, on one client", function ()
  -- A chat reply with the document in its message (below 4 levels: the root,
  -- choices, the choice, the message: 200 in all at 196), padded past the arena's first block.
  local function deep_reply (depth, tag, pad)
    local r = scripted.chat { content = "text-" .. tag }
    local deep = '"deep":' .. nest(depth, tag, pad) .. ',"role":"assistant"'
    return (r:gsub('"role":"assistant"', function () return deep end))
  end
  -- A stream: a plain first chunk, then one whose delta holds the document.
  local function deep_stream (depth, tag)
    local head = '{"id":"s1","object":"chat.completion.chunk","model":"m","created":1,"choices":[{"index":0,'
    return scripted.sse({ { role = "assistant", content = "" },
      head .. '"delta":{"content":"' .. tag .. '","deep":' .. nest(depth, tag) .. '},"finish_reason":null}]}',
      { content = "!" } }, "stop")
  end

  it("keep each one's values, replies (small and chained) and streams alternating", function ()
    local big = string.rep("p", 6000)
    local plan = {
      { "reply", 196, "r1" }, { "stream", 196, "s1" }, { "reply", 60, "r2", big }, { "stream", 33, "s2" },
      { "stream", 196, "s3" }, { "reply", 17, "r3" }, { "reply", 196, "r4", big }, { "stream", 16, "s4" },
    }
    local replies = {}
    for i, p in ipairs(plan) do
      replies[i] = p[1] == "reply" and deep_reply(p[2], p[3], p[4]) or deep_stream(p[2], p[3])
    end
    local srv = scripted.start(replies)
    local client = aigc.client { base_url = srv.base_url, api_key = "sk-fake-nesting", max_retries = 0 }
    for _, p in ipairs(plan) do
      local kind, depth, tag = p[1], p[2], p[3]
      if kind == "reply" then
        local res, err = client:chat { messages = { { role = "user", content = tag } } }
        assert.is_nil(err)
        assert.are.equal("text-" .. tag, res.text)
        assert.is_nil(wrong_level(res.choices[1].message.deep, depth, tag), tag)
        if p[4] then assert.are.equal(p[4], res.choices[1].message.deep.p) end
      else
        local deep, text = nil, {}
        local res, err = client:chat { messages = { { role = "user", content = tag } },
          stream = function (delta, chunk)
            text[#text + 1] = delta
            local d = chunk and chunk.choices and chunk.choices[1].delta.deep
            if d then deep = d end
          end }
        assert.is_nil(err)
        assert.are.equal(tag .. "!", res.choices[1].message.content)
        assert.are.equal(tag .. "!", table.concat(text))
        assert.is_nil(wrong_level(deep, depth, tag), tag)
      end
    end
    client:close()
    assert.are.equal(#plan, #srv.finish())
  end)
end)
