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
