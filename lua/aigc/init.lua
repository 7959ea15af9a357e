--- aigc: the chat and completion APIs of OpenAI-compatible servers, for Lua 5.1-5.4 and LuaJIT.
--
-- A Lua table goes in, a JSON request goes out over libcurl, and the parsed
-- reply comes back as Lua tables. The C core (`aigc.core`) owns the bytes
-- and sockets; this module is the public API on top of it.
--
-- @module aigc
-- @usage
-- local aigc = require "aigc"
-- local client = aigc.client { base_url = "http://127.0.0.1:8089/v1" }
-- local res = assert(client:chat { messages = { { role = "user", content = "Hi" } } })
-- print(res.text)

local compat = require "aigc.compat"
compat.jit_off(true, true)     -- this chunk and its functions off LuaJIT's JIT (#1045: see compat.lua)
compat.keep_aigc_off_jit()     -- and every aigc.* module loaded after it
local core = require "aigc.core"

local M = {
  --- The module's version.
  _VERSION = core._VERSION,
  --- JSON null: send it to put a `null` in the request body; JSON nulls in
  -- replies come back as this value (a light userdata, the same value as
  -- `cjson.null`). Note that it is truthy: compare with `== aigc.null`.
  null = core.null,
  --- The version of libcurl in use.
  curl_version = core.curl_version,
  --- Whether this libcurl speaks HTTP/2 (then `https://` servers that offer
  -- it get their requests multiplexed on one connection).
  http2 = core.http2,
  --- JSON encoding and decoding with aigc's rules (exact integers,
  -- `aigc.null`, `aigc.array`, errors that name the path of a bad value).
  -- `json.decode(s)` returns `nil, message` for malformed text.
  json = core.json,
}

--- Marks a table as a JSON array, so that it encodes as `[]` even when empty.
-- Arrays in decoded replies carry the same mark.
-- @tparam[opt] table t the table to mark (a new one if absent)
-- @treturn table t
-- @usage client:chat { messages = msgs, stop = aigc.array {} }
M.array = core.array

--- Whether a table carries the JSON array mark.
-- @tparam table t
-- @treturn boolean
M.is_array = core.is_array

--- Seconds on a monotonic clock (for measuring; not wall-clock time).
-- @function now
-- @treturn number
M.now = core.now

--- Blocks the calling thread for `seconds`, driving nothing: for a frame
-- loop's idle time. (Inside tasks use `client:sleep`, which yields.)
-- @function sleep
-- @tparam number seconds
M.sleep = core.sleep

--- Whether a value is an aigc error object.
-- @function is_error
-- @param v any value
-- @treturn boolean
M.is_error = require("aigc.util").is_error

-- The constructors: `aigc.client(opts)`, `aigc.conversation(opts)` and
-- `aigc.tools(list, opts)` -- each module is callable, the same as its
-- `new` (`aigc.client.new(opts)`...), and is what `require "aigc.client"`
-- gives.

-- Submodules load on first use: `aigc.client`, `aigc.conversation`, `aigc.strategy`, ...
setmetatable(M, {
  __index = function (t, name)
    if type(name) ~= "string" or name:find("[^%w_]") then return nil end
    local ok, mod = pcall(require, "aigc." .. name)
    if ok then
      rawset(t, name, mod)
      return mod
    end
    if not tostring(mod):find("module 'aigc." .. name .. "' not found", 1, true) then
      error(mod, 2)
    end
    return nil
  end,
})

return M
