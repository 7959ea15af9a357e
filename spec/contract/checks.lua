--- The contract specs' checks of Steady's verdicts (spec/contract_spec.lua
-- explains them): Steady reports each problem it finds in a request in
-- response headers `x-steady-error-N-code|path|message` with
-- `x-steady-error-count`, and only some problems change the status, so a
-- request is accepted when those headers say nothing is wrong.
--
-- @usage local checks = dofile(CONTRACT_DIR .. "/checks.lua")

local M = {}

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
