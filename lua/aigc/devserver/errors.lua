--- aigc devserver: errors in OpenAI's wire format, and the validation of
-- request fields shared by the endpoints. Part of the devserver package.

local json = require "aigc.devserver.json"

local format = string.format
local tointeger = math.tointeger
local O, NULL, num = json.O, json.NULL, json.num

local M = {}

local REASONS = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [202] = "Accepted", [204] = "No Content",
  [301] = "Moved Permanently", [302] = "Found", [304] = "Not Modified", [307] = "Temporary Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [402] = "Payment Required", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed", [408] = "Request Timeout", [409] = "Conflict",
  [410] = "Gone", [413] = "Payload Too Large", [415] = "Unsupported Media Type",
  [422] = "Unprocessable Entity", [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [501] = "Not Implemented", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
}

local STATUS_ERRORS = {
  [400] = { "invalid_request_error", NULL, "The request was malformed." },
  [401] = { "invalid_request_error", "invalid_api_key", "Incorrect API key provided." },
  [403] = { "invalid_request_error", "permission_denied", "You are not allowed to access this resource." },
  [404] = { "invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it." },
  [408] = { "invalid_request_error", "request_timeout", "The request timed out." },
  [409] = { "invalid_request_error", "conflict", "The request conflicts with another request." },
  [413] = { "invalid_request_error", "request_too_large", "The request body is too large." },
  [422] = { "invalid_request_error", "unprocessable_entity", "The request could not be processed." },
  [429] = { "requests", "rate_limit_exceeded",
            "Rate limit reached for aigc-dev on requests per min (RPM): Limit 10000, Used 10000, Requested 1. "
            .. "Please try again in 1s." },
  [500] = { "server_error", NULL, "The server had an error while processing your request. Sorry about that!" },
  [502] = { "server_error", NULL, "Bad gateway." },
  [503] = { "server_error", NULL, "The engine is currently overloaded, please try again later." },
  [504] = { "server_error", NULL, "The server timed out while processing your request." },
}

local function error_resp (status, message, etype, param, code, extra)
  local r = {
    status = status, ctype = "application/json",
    body = json.encode(O("error", O("message", message, "type", etype or "invalid_request_error",
      "param", param or NULL, "code", code or NULL))),
    headers = extra or {},
  }
  return r
end

local function status_error (status, extra)
  local e = STATUS_ERRORS[status] or { status >= 500 and "server_error" or "invalid_request_error", NULL,
    REASONS[status] or "Error" }
  return error_resp(status, e[3], e[1], nil, e[2], extra)
end

local function bad_param (param, message, code)
  return error_resp(400, message, "invalid_request_error", param, code)
end

local function isnull (v) return v == nil or v == NULL end

local function opt_int (body, key, lo, hi)
  local v = body[key]
  if isnull(v) then return nil end
  local i = type(v) == "number" and tointeger(v)
  if not i then
    return nil, bad_param(key, format("Invalid type for '%s': expected an integer.", key), "invalid_type")
  end
  if (lo and i < lo) or (hi and i > hi) then
    return nil, bad_param(key, format("Invalid '%s': integer out of range (%s..%s), got %d.", key,
      tostring(lo or "-inf"), tostring(hi or "inf"), i), "integer_out_of_range")
  end
  return i
end

local function opt_num (body, key, lo, hi, default)
  local v = body[key]
  if isnull(v) then return default end
  if type(v) ~= "number" or v ~= v then
    return nil, bad_param(key, format("Invalid type for '%s': expected a number.", key), "invalid_type")
  end
  if v < lo then
    return nil, bad_param(key, format("%.14g is less than the minimum of %s - '%s'", v, num(lo), key),
      "decimal_below_min_value")
  elseif v > hi then
    return nil, bad_param(key, format("%.14g is greater than the maximum of %s - '%s'", v, num(hi), key),
      "decimal_above_max_value")
  end
  return v
end

local function opt_stop (body)
  local s = body.stop
  if isnull(s) then return nil end
  if type(s) == "string" then return { s } end
  if type(s) == "table" and #s <= 4 then
    for _, x in ipairs(s) do if type(x) ~= "string" then s = nil; break end end
    if s then return s end
  end
  return nil, bad_param("stop", "Invalid 'stop': expected a string or an array of at most 4 strings.", "invalid_type")
end

local ROLES = { developer = true, system = true, user = true, assistant = true, tool = true, ["function"] = true }

local function check_messages (msgs)
  if isnull(msgs) then
    return bad_param("messages", "Missing required parameter: 'messages'.", "missing_required_parameter")
  end
  if type(msgs) ~= "table" or (#msgs == 0 and next(msgs) ~= nil) then
    return bad_param("messages", "Invalid type for 'messages': expected an array of objects.", "invalid_type")
  end
  if #msgs == 0 then
    return bad_param("messages", "Invalid 'messages': empty array. Expected an array with minimum length 1, "
      .. "but got an empty array instead.", "empty_array")
  end
  for i, m in ipairs(msgs) do
    if type(m) ~= "table" or type(m.role) ~= "string" or not ROLES[m.role] then
      return bad_param("messages", format("Invalid value for 'messages[%d]': expected an object with a valid "
        .. "'role' (developer, system, user, assistant, tool).", i - 1), "invalid_value")
    end
  end
end

local function check_tools (tools)
  if isnull(tools) then return nil end
  if type(tools) ~= "table" then
    return nil, bad_param("tools", "Invalid type for 'tools': expected an array.", "invalid_type")
  end
  local out = {}
  for i, t in ipairs(tools) do
    local f = type(t) == "table" and t["function"]
    if type(f) ~= "table" or type(f.name) ~= "string" then
      return nil, bad_param("tools", format("Invalid value for 'tools[%d]': expected a function tool with a name.",
        i - 1), "invalid_value")
    end
    out[#out + 1] = { name = f.name, parameters = type(f.parameters) == "table" and f.parameters or nil }
  end
  return out
end

--- A 404 for an object id: OpenAI's wording.
function M.not_found (what, id, param)
  return error_resp(404, format("No %s found with id '%s'.", what, id), "invalid_request_error", param, NULL)
end

--- A required string field; the error response if missing or not a string.
function M.need_string (body, key)
  local v = body[key]
  if isnull(v) then
    return nil, bad_param(key, format("Missing required parameter: '%s'.", key), "missing_required_parameter")
  end
  if type(v) ~= "string" then
    return nil, bad_param(key, format("Invalid type for '%s': expected a string.", key), "invalid_type")
  end
  return v
end

--- An optional enum field: its value (or `default`), or the error response.
function M.opt_enum (body, key, values, default)
  local v = body[key]
  if isnull(v) then return default end
  for _, x in ipairs(values) do if v == x then return v end end
  return nil, bad_param(key, format("Invalid value for '%s': expected one of %s.", key, table.concat(values, ", ")),
    "invalid_value")
end

--- With the fault `default-temperature` (a model that takes only its
-- default temperature, as OpenAI's reasoning models): OpenAI's 400 for a
-- `temperature` other than 1, or nil.
function M.check_default_temperature (body, fault)
  local t = body.temperature
  if not fault["default-temperature"] or isnull(t) or t == 1 then return nil end
  return bad_param("temperature", format("Unsupported value: 'temperature' does not support %s with this model. "
    .. "Only the default (1) value is supported.", tostring(t)), "unsupported_value")
end

M.REASONS, M.STATUS_ERRORS = REASONS, STATUS_ERRORS
M.error_resp, M.status_error, M.bad_param, M.isnull = error_resp, status_error, bad_param, isnull
M.opt_int, M.opt_num, M.opt_stop, M.check_messages, M.check_tools = opt_int, opt_num, opt_stop, check_messages,
  check_tools

return M
