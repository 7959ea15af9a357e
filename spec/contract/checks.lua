--- What the contract specs share: where the repository, Steady's harness
-- and the OpenAPI file are, the busted fixture that runs Steady for a
-- `describe` block, and the checks of Steady's verdicts (spec/contract_spec.lua
-- explains them): Steady reports each problem it finds in a request in
-- response headers `x-steady-error-N-code|path|message` with
-- `x-steady-error-count`, and only some problems change the status, so a
-- request is accepted when those headers say nothing is wrong.
--
-- @usage
-- local checks = dofile((debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") or "") .. "contract/checks.lua")

local M = {}

-- The repository root: $AIGC_SPEC_ROOT (set by scripts/run-tests.sh), else
-- two directories above this file (<root>/spec/contract/checks.lua).
local function repo_root ()
  local env = os.getenv("AIGC_SPEC_ROOT")
  if env and env ~= "" then return env end
  local dir = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]+$") or "."
  return dir:match("^(.*)/spec/contract$") or (dir == "spec/contract" and ".") or (dir .. "/../..")
end

M.ROOT = repo_root()
M.CONTRACT_DIR = M.ROOT .. "/spec/contract"
--- The OpenAPI description: $AIGC_OPENAPI, else <root>/../shared/openapi/openapi.yaml.
M.OPENAPI = os.getenv("AIGC_OPENAPI")
if M.OPENAPI == nil or M.OPENAPI == "" then M.OPENAPI = M.ROOT .. "/../shared/openapi/openapi.yaml" end
M.SCALE = tonumber(os.getenv("AIGC_TIMEOUT_SCALE")) or 1   -- > 1 under valgrind
M.steady = dofile(M.CONTRACT_DIR .. "/steady.lua")

--- Registers the contract fixture in the enclosing `describe`: Steady
-- started in setup with `args` (its command-line options), a client on it
-- (`client_opts` merged over base_url, api_key, max_retries = 0 and a
-- timeout), both stopped in teardown. `assign(client)` keeps the client in
-- the spec's locals. Returns `contract(name, fn)`: an `it` that is pending
-- when the OpenAPI file is absent. busted's block functions live in the spec
-- file's environment, so the spec passes it (`_ENV`; nil on Lua 5.1).
-- @usage
-- local client
-- local contract = checks.fixture(_ENV, { "--stream-interval=0" }, function (c) client = c end)
function M.fixture (env, args, assign, client_opts)
  -- (Lua 5.1 has no _ENV: the spec passes nil, and its environment is the caller's)
  env = env or rawget(_G, "getfenv")(2)
  local srv, client, skip_reason
  env.setup(function ()
    local f = io.open(M.OPENAPI, "rb")
    if not f then
      skip_reason = "the OpenAPI spec file is absent (" .. M.OPENAPI .. "): contract tests skipped"
      print("contract: " .. skip_reason)
      return
    end
    f:close()
    srv = M.steady.start { dir = M.CONTRACT_DIR, spec = M.OPENAPI, timeout = 60 * M.SCALE, args = args }
    -- Steady serves the spec's paths at the root: its `servers` URL's /v1 is not part of them.
    local opts = { base_url = srv.url, api_key = "sk-test", max_retries = 0, timeout = 15 * M.SCALE }
    for k, v in pairs(client_opts or {}) do opts[k] = v end
    local ok, c = pcall(require("aigc").client, opts)
    if not ok then srv:stop(); error(c, 0) end
    client = c
    assign(client)
  end)
  env.teardown(function ()
    if client then client:close() end
    if srv then srv:stop() end
  end)
  return function (name, fn)
    env.it(name, function ()
      if skip_reason then env.pending(skip_reason) end
      assert(client, "contract: the mock server is not running")
      fn()
    end)
  end
end

--- Steady's diagnostics in response headers `h`, one "#N CODE path: message"
-- line each, in N order.
function M.steady_errors (h)
  local by_n, ns = {}, {}
  for k, v in pairs(h or {}) do
    local n, field = k:match("^x%-steady%-error%-(%d+)%-(%a+)$")
    if n then
      n = tonumber(n)
      if not by_n[n] then by_n[n] = {}; ns[#ns + 1] = n end
      by_n[n][field] = v
    end
  end
  table.sort(ns)
  local out = {}
  for i, n in ipairs(ns) do
    local e = by_n[n]
    out[i] = ("#%d %s %s: %s"):format(n, e.code or "?", e.path or "?", e.message or "?")
  end
  return out
end

--- Steady answered at `path` and found nothing wrong with the request.
-- Returns the headers.
function M.assert_no_steady_errors (res, err, what, path)
  local h = (res and res.headers) or (err and err.headers)
  assert(h, what .. ": no response headers; aigc said: " .. tostring(err))
  assert(h["x-steady-matched-path"] == path,
         ("%s: expected Steady to answer at %s, got x-steady-matched-path %s (aigc: %s)")
         :format(what, path, tostring(h["x-steady-matched-path"]), tostring(err)))
  local problems = M.steady_errors(h)
  assert(#problems == 0 and h["x-steady-error-count"] == "0",
         ("%s: the request does not match the OpenAPI spec (x-steady-error-count: %s):\n  %s")
         :format(what, tostring(h["x-steady-error-count"]), table.concat(problems, "\n  ")))
  assert(h["x-steady-request-valid"] == "true",
         what .. ": x-steady-request-valid is " .. tostring(h["x-steady-request-valid"]))
  return h
end

--- A non-streamed call: the request is valid and aigc returned a result.
function M.assert_accepted (res, err, what, path)
  M.assert_no_steady_errors(res, err, what, path)
  assert(res ~= nil and err == nil,
         ("%s: expected a 2xx result, aigc returned an error: %s (status %s)")
         :format(what, tostring(err), tostring(err and err.status)))
  assert(type(res) == "table", what .. ": the result is a " .. type(res) .. ", not a table")
  return res
end

--- A streamed call: the request is valid and Steady answered with SSE.
-- Steady's streams are random (event order, sequence numbers), so the only
-- failure accepted from aigc is one about the stream's content (kind
-- "stream" or "parse", after a 200), never one about the request.
function M.assert_stream_accepted (res, err, what, path)
  local h = M.assert_no_steady_errors(res, err, what, path)
  assert((h["content-type"] or ""):find("^text/event%-stream"),
         what .. ": expected an SSE answer, got content-type " .. tostring(h["content-type"]))
  if err then
    assert((err.kind == "stream" or err.kind == "parse") and err.status == 200,
           what .. ": the request failed for a reason other than the mock's stream content: " .. tostring(err))
  end
  return h
end

return M
