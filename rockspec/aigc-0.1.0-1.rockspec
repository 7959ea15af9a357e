-- LuaRocks build of aigc: `luarocks make rockspec/aigc-0.1.0-1.rockspec`
-- (on Debian: add --lua-version=5.4 and
--  CURL_INCDIR=/usr/include/$(dpkg-architecture -qDEB_HOST_MULTIARCH)).
--
-- The version's one source is AIGC_VERSION in src/aigc.h (the module's
-- _VERSION); this file's name and `version` repeat it, as LuaRocks needs,
-- and spec/version_spec.lua fails if they (or the README, or the bundled
-- server's _VERSION) drift from it. `make version` prints it.
rockspec_format = "3.0"
package = "aigc"
version = "0.1.0-1"
source = {
  url = "git+https://github.com/aigc-lua/aigc.git",
  tag = "v0.1.0",
}
description = {
  summary = "OpenAI-compatible chat and completion APIs for Lua 5.4, in C on libcurl",
  detailed = [[
aigc gives Lua scripts the chat and completion APIs of OpenAI-compatible
language-model servers (OpenAI, Azure OpenAI, llama.cpp, Ollama, vLLM, LM
Studio, TGI, OpenRouter): blocking, streaming and non-blocking requests on
one libcurl multi engine, exact JSON marshalling, and clear errors.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4",
  "lua-cjson",   -- used by the bundled local server (aigc.devserver)
  -- aigc.devserver also needs "luv" (Debian: lua-luv); it is an optional
  -- development module, so luv is not a hard dependency of aigc.
}
external_dependencies = {
  CURL = { header = "curl/curl.h", library = "curl" },
}
build = {
  type = "builtin",
  modules = {
    ["aigc.core"] = {
      sources = {
        "src/buf.c", "src/sse.c", "src/json.c", "src/accum.c",
        "src/jsonlua.c", "src/error.c", "src/engine.c", "src/request.c", "src/core.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      incdirs = { "src", "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)" },
      libraries = { "curl" },
    },
    ["aigc"] = "lua/aigc/init.lua",
    ["aigc.client"] = "lua/aigc/client.lua",
    -- aigc.devserver: the bundled test/demo server, an optional development
    -- module (aigc never loads it); Lua 5.4 with luv and lua-cjson, run as
    -- its own process: lua5.4 .../aigc/devserver.lua --port 8089
    ["aigc.devserver"] = "lua/aigc/devserver.lua",
    ["aigc.devserver.api"] = "lua/aigc/devserver/api.lua",
    ["aigc.devserver.chat"] = "lua/aigc/devserver/chat.lua",
    ["aigc.devserver.completions"] = "lua/aigc/devserver/completions.lua",
    ["aigc.devserver.conn"] = "lua/aigc/devserver/conn.lua",
    ["aigc.devserver.embeddings"] = "lua/aigc/devserver/embeddings.lua",
    ["aigc.devserver.errors"] = "lua/aigc/devserver/errors.lua",
    ["aigc.devserver.faults"] = "lua/aigc/devserver/faults.lua",
    ["aigc.devserver.json"] = "lua/aigc/devserver/json.lua",
    ["aigc.devserver.multipart"] = "lua/aigc/devserver/multipart.lua",
    ["aigc.devserver.parser"] = "lua/aigc/devserver/parser.lua",
    ["aigc.devserver.records"] = "lua/aigc/devserver/records.lua",
    ["aigc.devserver.replies"] = "lua/aigc/devserver/replies.lua",
    ["aigc.devserver.respond"] = "lua/aigc/devserver/respond.lua",
    ["aigc.devserver.schema"] = "lua/aigc/devserver/schema.lua",
    ["aigc.devserver.server"] = "lua/aigc/devserver/server.lua",
    ["aigc.devserver.tokens"] = "lua/aigc/devserver/tokens.lua",
    ["aigc.devserver.tools"] = "lua/aigc/devserver/tools.lua",
    ["aigc.devserver.util"] = "lua/aigc/devserver/util.lua",
    ["aigc.conversation"] = "lua/aigc/conversation.lua",
    ["aigc.dialogue"] = "lua/aigc/dialogue.lua",
    ["aigc.schema"] = "lua/aigc/schema.lua",
    ["aigc.strategy"] = "lua/aigc/strategy.lua",
    ["aigc.tools"] = "lua/aigc/tools.lua",
  },
}
