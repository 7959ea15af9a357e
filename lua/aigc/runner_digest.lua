--- The request of a dataset runner's case, as it goes on the wire (a
-- batch line's body), and its digest: what a result line and OUT.batch keep
-- to tell a case that changed since it was answered or sent.
-- Internal: `aigc.runner` and `aigc.batch_backend` call it.
--
-- @module aigc.runner_digest

local adapter = require "aigc.adapter"
local cache = require "aigc.cache"
local cassette = require "aigc.cassette"
local core = require "aigc.core"
local util = require "aigc.util"
local credentials = require "aigc.credentials"

local pairs, type = pairs, type

util.own_module()

local M = {}

--- A case's structured output (a template's `schema`), as the dialogue
-- layer reads it (aigc.adapter), or nil.
-- @tparam table params
-- @treturn table|nil
local function schema_of (params)
  if params.schema == nil then return nil end
  return { schema = params.schema, schema_name = params.schema_name or "response",
           strict = params.schema_strict ~= false }
end

M.schema_of = schema_of

--- The body of a batch line: the call's params without what is never sent.
-- A schema goes as a direct call sends it (response_format, text.format): dropped with
-- the call options, the lines were free text and the schema's assertions failed.
-- @tparam table params
-- @tparam aigc.client client (its model, when params have none)
-- @tparam string api "chat" or "responses"
-- @treturn table
function M.wire_body (params, client, api)
  local body = {}
  for k, v in pairs(params) do
    if core.call_options[k] == nil and k ~= "stream" and k ~= "cache" then body[k] = v end
  end
  -- extra_body's fields go as they are, over the params' (as the encoder sends them)
  if type(params.extra_body) == "table" then for k, v in pairs(params.extra_body) do body[k] = v end end
  if body.model == nil then body.model = client.model end
  local o = schema_of(params)
  -- (by the API's adapter: chat's response_format, a response's text.format)
  if o then adapter[api].set_format(body, o, params.schema_mode == "json_object" and "json_object" or "json_schema") end
  return body
end

--- The digest of a request (its body, canonical): a case's request that
-- changed since it was answered (a result line's `digest`) or sent (its
-- batch line's) no longer matches. Its secrets (an `api_key` param goes
-- in the body) are left out, as the cassette's keys leave them: OUT.batch
-- kept an unsalted 64-bit hash of a body that held the key, from which a
-- short key was found by trying keys.
-- @tparam table body
-- @tparam table params the call's (for its credentials)
-- @treturn string
function M.digest (body, params)
  local text = credentials.replace_secrets(cassette.canonical(body), (credentials.call_credentials(params)),
                                    function () return "[secret]" end)
  return cache.hash(text)
end

--- The digest of a case's request made with `params` (as a batch line would send it).
-- @tparam table params
-- @tparam aigc.client client
-- @tparam string api
-- @param[opt] strategy how the request is answered (a dataset run's
-- `best_of`/`vote`, as a value): part of what is digested when given
-- @treturn string
function M.of_params (params, client, api, strategy)
  local body = M.wire_body(params, client, api)
  return M.digest(strategy == nil and body or { body = body, strategy = strategy }, params)
end

return M
