-- A connection error through a proxy says so, naming where the proxy came
-- from: libcurl names only the address it failed to reach ("Failed to
-- connect to 10.0.0.1 port 3128"), which for a proxy variable left set in
-- a shell named nothing the user had chosen. And it names a proxy only
-- where libcurl takes one: $HTTP_PROXY is not read for http, $no_proxy
-- exempts a host (by name, domain or CIDR). Each client runs in a child
-- process, with the environment under test.

local luachild = require "luachild"
local proc = require "procutil"

local SCRIPT = [[
  local aigc = require "aigc"
  local opts = { base_url = arg[1], max_retries = 0, connect_timeout = 5 }
  if arg[2] ~= "" then opts.proxy = arg[2] end
  local res, err = aigc.client(opts):chat "Hi"
  io.write(res and "ok" or (err.kind .. ": " .. err.message))
]]

-- The error message of a chat to `base_url` (with the `proxy` option when
-- given) under `env`.
local function message (base_url, proxy, env)
  local r = luachild.run(SCRIPT, { args = { base_url, proxy or "" }, env = env, timeout = 30 })
  assert.equal(0, r.status, r.stderr)
  return r.stdout
end

describe("a connection error through a proxy", function ()
  local closed, release   -- a port nothing listens on (held so: proc.closed_port)
  before_each(function () closed, release = proc.closed_port() end)
  after_each(function () release() end)

  it("names the proxy and the option it came from, without the proxy's password", function ()
    local m = message("http://api.example.invalid/v1", "http://user:s3cret-pw@127.0.0.1:" .. closed)
    assert.matches("^connect: Failed to connect to 127%.0%.0%.1 port " .. closed, m)
    assert.matches("(through the proxy http://127.0.0.1:" .. closed .. ", from the proxy option)", m, 1, true)
    assert.is_nil(m:find("s3cret", 1, true))
  end)

  it("names the environment variable it came from ($https_proxy, $all_proxy)", function ()
    local proxy = "http://127.0.0.1:" .. closed
    local m = message("https://api.example.invalid/v1", nil, { https_proxy = proxy })
    assert.matches("(through the proxy " .. proxy .. ", from $https_proxy)", m, 1, true)
    m = message("http://api.example.invalid/v1", nil, { all_proxy = "127.0.0.1:" .. closed })
    assert.matches("(through the proxy " .. proxy .. ", from $all_proxy)", m, 1, true)
  end)

  it("names none where libcurl takes none: $HTTP_PROXY for http, a host $no_proxy exempts", function ()
    local port, release_port = proc.closed_port()
    finally(release_port)
    local direct = "http://127.0.0.1:" .. port .. "/v1"
    local proxy = "http://127.0.0.1:" .. closed
    for _, env in ipairs {
      { HTTP_PROXY = proxy },                                   -- (never read for http: a CGI's header)
      { http_proxy = proxy, no_proxy = "127.0.0.1" },
      { http_proxy = proxy, NO_PROXY = "localhost, 127.0.0.0/8" },
      { http_proxy = proxy, no_proxy = "*" },
    } do
      local m = message(direct, nil, env)
      assert.matches("^connect: Failed to connect to 127%.0%.0%.1", m)
      assert.is_nil(m:find("proxy", 1, true), m)
      -- (and the address is the server's: libcurl went there directly)
      assert.is_nil(m:find("port " .. closed, 1, true), m)
    end
    -- a domain in $no_proxy exempts its hosts, a leading dot or not
    local m = message("http://api.example.invalid/v1", nil, { http_proxy = proxy, no_proxy = ".example.invalid" })
    assert.is_nil(m:find("through the proxy", 1, true), m)
    -- the option too is subject to $no_proxy, as libcurl has it
    m = message(direct, proxy, { no_proxy = "127.0.0.1" })
    assert.is_nil(m:find("through the proxy", 1, true), m)
  end)

  it("names the proxy exactly where libcurl went through it, by libcurl's $no_proxy rules (noproxy.c)", function ()
    local proxy = "http://127.0.0.1:" .. closed
    local port, release_port = proc.closed_port()
    finally(release_port)
    -- (host, $no_proxy, whether libcurl takes the proxy: 7.88 to 8.18 alike)
    for _, case in ipairs {
      { "127.0.0.1", "0.0.1", true },           -- an IPv4 host matches no name, not a name's tail either
      { "127.0.0.1", "127.0.0.0/0", true },     -- "/0": the same address only
      { "127.0.0.1", "127.0.0.1/33", true },    -- a width past 32: nothing
      { "127.0.0.1", "10.0.0.0/8 127.0.0.0/8", false },
      { "localhost", "localhost.", false },     -- an entry's trailing dot is ignored
      { "[::1]", "::1", false },
      { "[::1]", "[::1]", true },
      { "[::1]", "fd00::/8", true },
      -- a host in another numeric form is the address libcurl's URL parser makes of it, no name
      { "127.1", "127.0.0.1", false },
      { "0x7f.0.0.1", "127.0.0.0/8", false },
      { "2130706433", "127.0.0.1", false },
      { "0177.0.0.01", "127.0.0.1", false },
      { "127.0.1", "localhost 127.0.0.1", false },
      { "127.0.0.1", "127.1", true },           -- (an entry is never made an address so)
      { "127.1", "127.1", true },
    } do
      local m = message("http://" .. case[1] .. ":" .. port .. "/v1", nil, { http_proxy = proxy, no_proxy = case[2] })
      local through = m:find("port " .. closed, 1, true) ~= nil
      assert.equal(case[3], through, case[2] .. ": " .. m)
      assert.equal(through, m:find("(through the proxy " .. proxy .. ", from $http_proxy)", 1, true) ~= nil,
                   case[2] .. ": " .. m)
    end
  end)
end)

describe("a proxy option libcurl cannot use", function ()
  local aigc = require "aigc"

  it("is refused as the client is made, naming it (every call failed as a connection error, retried)", function ()
    for _, case in ipairs {
      { "http://user:s3cret-pw@127.0.0.1:70000", "Port number" }, { "http://[::1", "IPv6" },
      { "http://:3128", "No host" }, { "socks9://127.0.0.1:1080", "no proxy of the scheme socks9" },
    } do
      local ok, e = pcall(aigc.client, { base_url = "http://127.0.0.1:1/v1", proxy = case[1], max_retries = 2 })
      assert.is_false(ok, case[1])
      assert.matches("bad argument #1 to 'client' (opts.proxy: not a proxy libcurl can use: ", e, 1, true)
      assert.matches(case[2], e, 1, true)
      assert.is_nil(e:find("s3cret", 1, true))
    end
    -- what libcurl takes is taken: no scheme (http), socks, an IPv6 address, "" (no proxy)
    for _, proxy in ipairs { "127.0.0.1:3128", "socks5h://u:p@127.0.0.1:1080", "http://[::1]:3128", "HTTPS://h:1",
                             "" } do
      aigc.client({ base_url = "http://127.0.0.1:1/v1", proxy = proxy }):close()
    end
  end)
end)
