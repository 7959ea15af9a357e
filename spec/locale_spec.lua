-- A host may set a comma-decimal numeric locale (setlocale(LC_NUMERIC,
-- "de_DE.UTF-8") in C, os.setlocale("de_DE.utf8", "numeric") in Lua): C's
-- strtod and printf, and Lua's tostring, tonumber (5.1) and string.format,
-- then read and write "1,5". What comes from the wire and goes on it must
-- not change: probe4 finding 8 (retry-after: 1.5 was ignored).
local aigc = require "aigc"
local devserver = require "devserver"

warn("@on")

local NAMES = { "de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "de_DE" }

-- Runs fn under a comma-decimal LC_NUMERIC, restoring the old one however
-- fn ends (the harness's cjson, which reads the devserver's answers,
-- follows the locale too: ask the server after); pending when no such
-- locale is installed. Returns true when fn ran.
local function with_comma_locale (fn)
  local old = os.setlocale(nil, "numeric")
  local got
  for _, name in ipairs(NAMES) do
    -- (all comma-decimal: LuaJIT's string.format ignores the locale, so it
    -- cannot be asked; C's strtod and printf, which aigc uses, do not)
    got = os.setlocale(name, "numeric")
    if got then break end
  end
  if not got then
    os.setlocale(old, "numeric")
    pending("no comma-decimal locale installed (locale -a): not run")
    return false
  end
  local ok, err = pcall(fn)
  os.setlocale(old, "numeric")
  if not ok then error(err, 0) end
  return true
end

describe("under a comma-decimal LC_NUMERIC", function ()
  local srv, client

  devserver.fixture(_ENV, function (s, c) srv, client = s, c end, { max_retries = 0 })

  it("retry-after: 1.5 is 1.5 s, and retry-after-ms: 1500.5 is 1.5005 s", function ()
    with_comma_locale(function ()
      local _, err = client:chat { messages = { { role = "user", content = "Hi" } },
                                   headers = { ["x-aigc-fault"] = "status=429,retry-after=1.5" } }
      assert.equal(429, err.status)
      assert.equal(1.5, err.retry_after)
      _, err = client:chat { messages = { { role = "user", content = "Hi" } },
                             headers = { ["x-aigc-fault"] = "status=429,raw-header=retry-after-ms: 1500.5" } }
      assert.equal(1.5005, err.retry_after)
    end)
  end)

  it("sends a number given as a header value with a '.' (the client's and the call's)", function ()
    with_comma_locale(function ()
      local c = aigc.client { base_url = srv.base_url, max_retries = 0, headers = { ["X-Client-Ratio"] = 0.25 } }
      assert(c:chat { messages = { { role = "user", content = "Hi" } }, headers = { ["X-Call-Ratio"] = 1.5,
                                                                                    ["X-Call-Count"] = 3 } })
      c:close()
    end)
    local h = srv:last().headers
    assert.same({ "0.25", "1.5", "3" }, { h["x-client-ratio"], h["x-call-ratio"], h["x-call-count"] })
  end)

  it("sends a number given as a query value with a '.' (the client's and the call's)", function ()
    with_comma_locale(function ()
      local c = aigc.client { base_url = srv.base_url, max_retries = 0, query = { ratio = 0.25 } }
      assert(c:chat { messages = { { role = "user", content = "Hi" } }, query = { x = 1.5, n = 3 },
                      extra_query = { y = 2.5 } })
      c:close()
    end)
    local q = srv:last().query
    assert.same({ ratio = "0.25", x = "1.5", n = "3", y = "2.5" }, q)
  end)

  it("is waited for on a retry (0.9 s, not the backoff of at most 0.5 s)", function ()
    with_comma_locale(function ()
      local core = require "aigc.core"
      local t0 = core.now()
      local res = assert(client:chat { messages = { { role = "user", content = "Hi" } }, max_retries = 1,
                                       headers = { ["x-aigc-fault"] = "status=503,retry-after=0.9,times=1,key=loc1" } })
      assert.equal(1, res.retries)
      assert.truthy(core.now() - t0 >= 0.9, "waited only " .. (core.now() - t0))
    end)
  end)

  it("JSON numbers are written and read with '.'", function ()
    if not with_comma_locale(function ()
      assert(client:chat { messages = { { role = "user", content = "Hi" } }, temperature = 0.5, top_p = 0.25 })
      assert.equal('{"x":0.5}', aigc.json.encode { x = 0.5 })
      local v = aigc.json.decode '{"x":0.5,"y":-2.25e2,"z":1e-3}'
      assert.same({ x = 0.5, y = -225.0, z = 0.001 }, v)
    end) then return end
    local sent = srv:last().body_json
    assert.equal(0.5, sent.temperature)
    assert.equal(0.25, sent.top_p)
  end)

  it("a float in a multipart form is sent with '.' (temperature = 0.5 for a transcription)", function ()
    local tmp = os.tmpname()
    local path = tmp .. ".wav"
    finally(function () os.remove(tmp); os.remove(path) end)
    assert(client:speech { input = "Where is my order", response_format = "wav", to = path })
    if not with_comma_locale(function ()
      assert(client:transcribe { file = path, model = "whisper-1", temperature = 0.5 })
    end) then return end
    local value
    for _, p in ipairs(srv:last().parts) do if p.name == "temperature" then value = p.value end end
    assert.equal("0.5", value)
  end)

  it("x-ratelimit-reset durations read as OpenAI writes them (1.5s, 20ms, 6m0.5s)", function ()
    local ratelimit = require "aigc.ratelimit"
    with_comma_locale(function ()
      assert.equal(1.5, ratelimit.duration("1.5s"))
      assert.equal(0.02, ratelimit.duration("20ms"))
      assert.equal(360.5, ratelimit.duration("6m0.5s"))
      assert.equal(1.5, ratelimit.duration("1.5"))
      assert.is_nil(ratelimit.duration("1,5"))
    end)
  end)

  -- A cassette's key holds the params as canonical JSON: string.format's
  -- "%.17g" wrote temperature = 0.7 as 0,69999999999999996 there, so a tape
  -- recorded in one locale missed in the other (a C host that calls
  -- setlocale(LC_ALL, "") replaying its CI's tapes: 404 cassette_miss).
  it("a cassette recorded under it replays in the C locale, and the other way", function ()
    local tape = os.tmpname()
    finally(function () os.remove(tape); os.remove(tape .. ".lock") end)
    os.remove(tape)
    local HI = { { role = "user", content = "Echo: locale" } }
    local live
    if not with_comma_locale(function ()
      local rec = aigc.client { base_url = srv.base_url, model = "aigc-dev",
                                cassette = { path = tape, mode = "record" } }
      live = assert(rec:chat { messages = HI, temperature = 0.7 })
      rec:close()
    end) then return end
    local f = assert(io.open(tape, "rb"))
    local text = f:read("*a")
    f:close()
    assert.truthy(text:find('temperature\\?":0%.69999999999999996', 1), "the key's number: " .. text:sub(1, 300))
    local off = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev",
                              cassette = { path = tape, mode = "replay" } }
    local res, err = off:chat { messages = HI, temperature = 0.7 }
    off:close()
    assert.is_nil(err)
    assert.equal(live.text, res.text)
    -- and a tape of the C locale under the comma
    local got, gerr
    with_comma_locale(function ()
      local again = aigc.client { base_url = "http://127.0.0.1:9/v1", model = "aigc-dev",
                                  cassette = { path = tape, mode = "replay" } }
      got, gerr = again:chat { messages = HI, temperature = 0.7 }
      again:close()
    end)
    assert.is_nil(gerr)
    assert.equal(live.text, got.text)
  end)

  -- A disk cache reads its files' times from GNU find ("1733490000.5"):
  -- Lua 5.1's tonumber read nil there, and a put with `ttl` or
  -- `max_disk_bytes` raised "attempt to perform arithmetic on local 'time'".
  it("a disk cache with ttl and max_disk_bytes prunes its oldest files", function ()
    local cache = require "aigc.cache"
    local dir = os.tmpname()
    os.remove(dir)
    finally(function () os.execute("rm -rf '" .. dir .. "'") end)
    assert(os.execute("mkdir -p '" .. dir .. "'"))
    local cc = cache.new { dir = dir, ttl = 3600, max_disk_bytes = 400 }
    local ok, err
    with_comma_locale(function ()
      ok, err = pcall(function ()
        for i = 1, 10 do
          cc:put("k" .. i, { text = string.rep("z", 60) .. i })
          os.execute("sleep 0.01")   -- (files' times in order, as cache_spec's)
        end
      end)
    end)
    assert(ok, err)
    cc:clear()   -- (memory emptied: what remains is on disk)
    assert.equal(string.rep("z", 60) .. 10, cc:get("k10").text)
    assert.is_nil(cc:get("k1"))
  end)

  it("a judge's score \"8.5/10\" and a template file's 0.5 read as 8.5 and 0.5 (nil and an error on 5.1)", function ()
    local judge, template = require "aigc.judge", require "aigc.template"
    with_comma_locale(function ()
      assert.equal(8.5, judge.score_of("8.5/10"))
      assert.equal(7.5, judge.score_of("I would give it 7.5."))
      local data = assert(template.load_data("return { prompt = 'Hi', params = { temperature = 0.5 } }", "t.lua"))
      assert.equal(0.5, data.params.temperature)
    end)
  end)

  it("the prompt log writes a float with a '.' in its SQL (\"1,5\" was two values: the entry was lost)", function ()
    local ok_sql, luasql = pcall(require, "luasql.sqlite3")
    if not ok_sql then pending("no LuaSQL for this Lua"); return end
    local path = os.tmpname()
    finally(function () os.remove(path) end)
    local log = assert(require("aigc.promptlog").open(path))
    local id, err
    with_comma_locale(function ()
      id, err = log:record { prompt = "x", response = "y", prompt_tokens = 1.5, total_tokens = 2.25 }
    end)
    log:close()
    assert.is_nil(err)
    assert.is_number(id)
    local con = assert(luasql.sqlite3():connect(path))
    local cur = assert(con:execute("SELECT prompt_tokens, total_tokens FROM responses"))
    local a, b = cur:fetch()
    cur:close()
    con:close()
    assert.same({ 1.5, 2.25 }, { a, b })
  end)
end)
