--- What a reply the core accepted may still get wrong (issue 15's calls):
-- its shape checked (`data` an array of objects...), and the errors built
-- here from server data, scrubbed of the secrets as the core's own are.
--
-- Internal: shared by `aigc.media` and `aigc.files`.
--
-- @module aigc.reply
-- @local

local core = require "aigc.core"
local util = require "aigc.util"

local ipairs, next, tostring, type = ipairs, next, tostring, type
local null, is_array = core.null, core.is_array

util.own_module()

local M = {}

--- `err` (an error built here from server data) with the client's
-- secrets, and the call's own credentials (`params`: its headers' and
-- query's, `credentials.call_credentials`), scrubbed as the core scrubs its own
-- errors.
-- @local
function M.scrub (self, err, params)
  return util.scrub(self, err, params)
end

--- An error found in a reply the core accepted (a stream that stopped
-- early, a field of the wrong type): with the reply's status, headers and
-- request id, as the core's errors have them, scrubbed of the secrets
-- (`M.scrub`). `res` may be the core's error for the reply (its status,
-- headers...).
-- @local
function M.reply_error (self, params, res, kind, message)
  return M.scrub(self, core.error { kind = kind, message = message, status = util.is_error(res) and res.status or 200,
                                    headers = res.headers, request_id = res.request_id,
                                    retries = res.retries }, params)
end

-- How a reply's value is described in a message: "null", "an array",
-- "an object", "a string"...
local function shape (v)
  if v == null then return "null" end
  if type(v) == "table" then return is_array(v) and "an array" or "an object" end
  if v == nil then return "nothing" end
  return "a " .. type(v)
end

-- Whether a reply's value is a JSON object (a table the decoder did not
-- mark as an array).
local function is_object (v)
  return type(v) == "table" and not is_array(v) and v[1] == nil
end
M.is_object, M.shape = is_object, shape

--- The array of objects at `res[field]`, or nil and why (a message naming
-- the field). `optional`: absent is an empty array.
-- @local
function M.reply_objects (res, field, optional)
  local list = res[field]
  if list == nil and optional then return {} end
  if type(list) ~= "table" or not (is_array(list) or list[1] ~= nil or next(list) == nil) then
    return nil, "the reply's " .. field .. ": an array expected, got " .. shape(list)
  end
  for i, item in ipairs(list) do
    if not is_object(item) then
      return nil, "the reply's " .. field .. "[" .. i .. "]: an object expected, got " .. shape(item)
    end
  end
  return list
end

--- Whether a Content-Type is JSON's (application/json, or a +json type).
function M.is_json_type (ct)
  if type(ct) ~= "string" then return false end
  ct = ct:lower():match("^%s*([^;%s]+)")
  return ct ~= nil and (ct == "application/json" or ct:find("%+json$") ~= nil)
end

--- Whether a reply of this Content-Type cannot be audio: JSON, or any
-- text/* (a proxy's HTML page, a plain-text error, an event stream).
function M.is_not_audio_type (ct)
  if M.is_json_type(ct) then return true end
  return type(ct) == "string" and ct:lower():match("^%s*text/") ~= nil
end

--- The error of a 2xx JSON or text reply where audio was expected (`text`:
-- its first bytes): the API's error (kind "api", as the core makes one of a
-- 2xx `{"error": ...}`, whatever the type said), else kind "parse".
-- `what` names the reply in the message ("image 1"; default "audio").
function M.not_audio (self, params, res, text, what)
  local v = text and core.json.decode(text)
  local e = { kind = "parse", status = 200, headers = res.headers, request_id = res.request_id,
              retries = res.retries,
              message = "the server answered with " .. (M.is_json_type(res.content_type) and "JSON" or "text")
                        .. " (" .. tostring(res.content_type) .. "), not " .. (what or "audio") }
  if is_object(v) then
    e.body = v
    local inner = v.error
    if is_object(inner) then
      e.kind, e.message = "api", "the server returned an error"
      for _, k in ipairs { "message", "type", "code", "param" } do
        local x = inner[k]
        if type(x) == "string" or type(x) == "number" then e[k] = x end
      end
    elseif type(inner) == "string" then
      e.kind, e.message = "api", inner
    end
    local said = v.message or v.detail
    if e.kind == "parse" and type(said) == "string" then e.message = e.message .. ": " .. said end
  elseif text then
    e.body = text
  end
  return M.scrub(self, core.error(e), params)
end

return M
