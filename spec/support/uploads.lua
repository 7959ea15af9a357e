--- Helpers of the files_upload / files_upload_parts specs (uploads_*_spec):
-- what they feed an upload, and what they read of the bundled server's
-- record of it (spec/support/devserver.lua's `srv:requests()`).

local M = {}

--- A folder of a describe block's own, for the files it uploads: made in
-- its setup (`assign(path)`), removed with what it holds in its teardown.
-- @param env the spec's _ENV (nil on Lua 5.1: the caller's environment)
-- @tparam function assign
function M.folder_fixture (env, assign)
  env = env or rawget(_G, "getfenv")(2)
  local dir
  env.setup(function ()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "'"))
    assign(dir)
  end)
  env.teardown(function () os.execute("rm -rf '" .. dir .. "'") end)
end

--- A file given by a reader of `s` in one piece, with its size.
function M.file_of (s)
  local given = false
  return { size = #s, reader = function () if given then return nil end given = true return s end }
end

--- `n` printable bytes, no two neighbours alike (a part cut in the wrong
-- place shows).
function M.bytes (n)
  local t = {}
  for i = 1, n do t[i] = string.char(32 + (i * 7) % 90) end
  return table.concat(t)
end

--- The paths of the requests `srv` recorded, oldest first.
function M.paths (srv)
  local t = {}
  for _, r in ipairs(srv:requests()) do t[#t + 1] = r.path end
  return t
end

--- How many of the requests `srv` recorded went to `path`.
function M.count (srv, path)
  local n = 0
  for _, r in ipairs(srv:requests()) do if r.path == path then n = n + 1 end end
  return n
end

--- The multipart part named `name` of a request `rec` the server recorded
-- (its `size`, `crc32`, `filename`, `content_type`), or nil.
function M.part_of (rec, name)
  for _, p in ipairs(rec.parts or {}) do
    if p.name == name then return p end
  end
end

--- The value of the header `name` (lower case) of a recorded request, or nil.
function M.header (rec, name)
  for k, v in pairs(rec.headers or {}) do
    if k:lower() == name then return v end
  end
end

return M
