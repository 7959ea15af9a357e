-- proc.fill, which writes the nginx configurations of the specs that start
-- an nginx of their own (security, transport, upload_reader). Those specs
-- once chained one gsub per word: a temporary directory named
-- /tmp/lua_EHBUH2, put in for DIR, then had its "H2" replaced by a port,
-- nginx found no certificate, and the spec failed "nginx did not start on
-- ports of its own" (two CIs in a row, security_spec on 5.2 and under
-- valgrind).
local proc = require "procutil"

describe("proc.fill", function ()
  it("never searches a value it put in for another word (a directory named ..H2.. for DIR, then H2)", function ()
    local conf = proc.fill("listen 127.0.0.1:H2 ssl; ssl_certificate DIR/good.pem; return 'REPLY';",
      { H2 = 4431, DIR = "/tmp/lua_EHBUH2", REPLY = "over TLS on DIR", TLS = 4430 })
    assert.equal("listen 127.0.0.1:4431 ssl; ssl_certificate /tmp/lua_EHBUH2/good.pem; return 'over TLS on DIR';",
      conf)
  end)

  it("replaces whole words only: OWNPORT is not OWN then PORT", function ()
    assert.equal("1 2 OWNER", proc.fill("OWNPORT PORT OWNER", { OWNPORT = 1, PORT = 2, OWN = "x" }))
  end)

  it("keeps words it has no value for, and % in a value as it is", function ()
    assert.equal("X-Via-Proxy 100% $server_protocol", proc.fill("X-Via-Proxy PCT $server_protocol", { PCT = "100%" }))
  end)
end)

-- proc.free_port, which picks the ports of those nginx configurations: the
-- kernel may hand out the port it handed out a moment ago (the probe socket
-- is closed at once), and security_spec's nginx then put two servers on one
-- port (its HTTP/2 tests got the other server's certificate: "self-signed
-- certificate", CI of stop 40).
describe("proc.free_port", function ()
  it("never gives a port it gave among its last 512 (3,000 calls)", function ()
    local given, repeats = {}, 0
    for i = 1, 3000 do
      local port = proc.free_port()
      assert.is_true(port > 0 and port < 65536)
      if given[port] and i - given[port] <= 512 then repeats = repeats + 1 end
      given[port] = i
    end
    assert.equal(0, repeats)
  end)
end)

-- proc.closed_port, the port the specs expect a refused connection on
-- (proxy_errors, upload_reader, watch): it was found free and closed again,
-- and a server of another suite running beside (`make test` runs several)
-- could bind it before the test connected; the test then talked to that
-- server. Held now: nobody can bind it until it is released.
describe("proc.closed_port", function ()
  local socket = require "socket"

  it("refuses connections, and no server can bind it while it is held, in this process or another", function ()
    local port, release = proc.closed_port()
    finally(release)
    local c = socket.tcp()
    c:settimeout(10)
    local ok, err = c:connect("127.0.0.1", port)
    c:close()
    assert.is_nil(ok)
    assert.equal("connection refused", err)
    -- (socket.bind sets SO_REUSEADDR, as nginx, libuv and the devserver do)
    local srv, why = socket.bind("127.0.0.1", port)
    if srv then srv:close() end
    assert.is_nil(srv)
    assert.equal("address already in use", why)
    local _, out = proc.sh("lua5.4 -e " .. proc.quote(("local s, e = require('socket').bind('0.0.0.0', %d); "
      .. "io.write(s and 'bound' or e)"):format(port)))
    assert.equal("address already in use", out)
  end)
end)
