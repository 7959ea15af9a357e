-- LuaRocks build of aigc: `luarocks make rockspec/aigc-0.1.0-1.rockspec`
-- (on Debian: add --lua-version=5.1|5.2|5.3|5.4 and
--  CURL_INCDIR=/usr/include/$(dpkg-architecture -qDEB_HOST_MULTIARCH)).
--
-- Lua 5.1 to 5.4, and LuaJIT 2.1 (a 5.1 for LuaRocks: the rock built for
-- 5.1 loads in LuaJIT, as Debian's 5.1 modules do). On 5.1 and 5.2 the C
-- core uses compat-5.3 (its C API of 5.3) from compat-5.3.h, found beside
-- lua.h in $(LUA_INCDIR): Debian's lua-compat53-dev puts it in
-- /usr/include/lua5.1 and /usr/include/lua5.2; elsewhere copy compat-5.3.h
-- and compat-5.3.c (github.com/lunarmodules/lua-compat-5.3, c-api/) there.
-- scripts/check-rockspec.lua (suite rockspec-files of `make test`) fails when
-- the C sources or Lua modules listed here differ from the tree.
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
  summary = "OpenAI-compatible chat and completion APIs for Lua 5.1-5.4 and LuaJIT, in C on libcurl",
  detailed = [[
aigc gives Lua scripts the chat and completion APIs of OpenAI-compatible
language-model servers (OpenAI, Azure OpenAI, llama.cpp, Ollama, vLLM, LM
Studio, TGI, OpenRouter): blocking, streaming and non-blocking requests on
one libcurl multi engine, exact JSON marshalling, and clear errors.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
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
        -- the plain-C parts (no Lua), then the layers over them (src/*.c:
        -- scripts/check-rockspec.lua fails when this list and the folder differ)
        "src/buf.c", "src/sse.c", "src/json.c", "src/jsonout.c", "src/accum_keys.c", "src/accum_shape.c",
        "src/accum.c", "src/accum_scan.c", "src/raccum.c", "src/poller.c", "src/base64.c", "src/vec.c", "src/sha256.c", "src/md5.c", "src/syserr.c", "src/body.c", "src/unescape.c",
        "src/core.c", "src/dirfs.c",
        "src/engine.c", "src/error.c", "src/error_report.c", "src/form.c", "src/headers.c", "src/home.c", "src/jsonlua.c", "src/lockfile.c", "src/loop.c", "src/media.c",
        "src/peers.c", "src/redact.c", "src/request.c", "src/response.c", "src/retry.c",
        "src/roster.c", "src/server_error.c", "src/slots.c", "src/submit.c", "src/textrun.c", "src/timers.c", "src/transfer.c", "src/util.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      incdirs = { "src", "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)" },
      libraries = { "curl" },
    },
    ["aigc"] = "lua/aigc/init.lua",
    ["aigc.check"] = "lua/aigc/check.lua",
    ["aigc.check_history"] = "lua/aigc/check_history.lua",
    ["aigc.client"] = "lua/aigc/client.lua",
    ["aigc.client_setup"] = "lua/aigc/client_setup.lua",
    ["aigc.files"] = "lua/aigc/files.lua",
    ["aigc.media"] = "lua/aigc/media.lua",
    ["aigc.media_call"] = "lua/aigc/media_call.lua",
    ["aigc.download"] = "lua/aigc/download.lua",
    ["aigc.reply"] = "lua/aigc/reply.lua",
    ["aigc.vec"] = "lua/aigc/vec.lua",
    ["aigc.responses"] = "lua/aigc/responses.lua",
    ["aigc.conversations"] = "lua/aigc/conversations.lua",
    ["aigc.adapter"] = "lua/aigc/adapter.lua",
    ["aigc.tokens"] = "lua/aigc/tokens.lua",
    ["aigc.compat"] = "lua/aigc/compat.lua",
    -- aigc.devserver: the bundled test/demo server, an optional development
    -- module (aigc never loads it); Lua 5.4 only (whatever Lua the rock is
    -- for), with luv and lua-cjson, run as its own process:
    -- lua5.4 .../aigc/devserver.lua --port 8089
    ["aigc.devserver"] = "lua/aigc/devserver.lua",
    ["aigc.devserver.api"] = "lua/aigc/devserver/api.lua",
    ["aigc.devserver.batches"] = "lua/aigc/devserver/batches.lua",
    ["aigc.devserver.chat"] = "lua/aigc/devserver/chat.lua",
    ["aigc.devserver.completions"] = "lua/aigc/devserver/completions.lua",
    ["aigc.devserver.conn"] = "lua/aigc/devserver/conn.lua",
    ["aigc.devserver.embeddings"] = "lua/aigc/devserver/embeddings.lua",
    ["aigc.devserver.errors"] = "lua/aigc/devserver/errors.lua",
    ["aigc.devserver.faults"] = "lua/aigc/devserver/faults.lua",
    ["aigc.devserver.files"] = "lua/aigc/devserver/files.lua",
    ["aigc.devserver.images"] = "lua/aigc/devserver/images.lua",
    ["aigc.devserver.json"] = "lua/aigc/devserver/json.lua",
    ["aigc.devserver.moderations"] = "lua/aigc/devserver/moderations.lua",
    ["aigc.devserver.multipart"] = "lua/aigc/devserver/multipart.lua",
    ["aigc.devserver.parser"] = "lua/aigc/devserver/parser.lua",
    ["aigc.devserver.png"] = "lua/aigc/devserver/png.lua",
    ["aigc.devserver.ratelimit"] = "lua/aigc/devserver/ratelimit.lua",
    ["aigc.devserver.records"] = "lua/aigc/devserver/records.lua",
    ["aigc.devserver.replies"] = "lua/aigc/devserver/replies.lua",
    ["aigc.devserver.respond"] = "lua/aigc/devserver/respond.lua",
    ["aigc.devserver.responses"] = "lua/aigc/devserver/responses.lua",
    ["aigc.devserver.conversations"] = "lua/aigc/devserver/conversations.lua",
    ["aigc.devserver.responses_build"] = "lua/aigc/devserver/responses_build.lua",
    ["aigc.devserver.responses_stream"] = "lua/aigc/devserver/responses_stream.lua",
    ["aigc.devserver.schema"] = "lua/aigc/devserver/schema.lua",
    ["aigc.devserver.server"] = "lua/aigc/devserver/server.lua",
    ["aigc.devserver.speech"] = "lua/aigc/devserver/speech.lua",
    ["aigc.devserver.tokens"] = "lua/aigc/devserver/tokens.lua",
    ["aigc.devserver.tools"] = "lua/aigc/devserver/tools.lua",
    ["aigc.devserver.transcribe"] = "lua/aigc/devserver/transcribe.lua",
    ["aigc.devserver.util"] = "lua/aigc/devserver/util.lua",
    -- the `aigc` command's parts (bin/aigc); they need lua-argparse,
    -- lua-readline, lua-term and luasql-sqlite3 (optional for the library)
    ["aigc.cli"] = "lua/aigc/cli/init.lua",
    ["aigc.cli.chat"] = "lua/aigc/cli/chat.lua",
    ["aigc.cli.common"] = "lua/aigc/cli/common.lua",
    ["aigc.cli.config"] = "lua/aigc/cli/config.lua",
    ["aigc.cli.image"] = "lua/aigc/cli/image.lua",
    ["aigc.cli.lineinput"] = "lua/aigc/cli/lineinput.lua",
    ["aigc.cli.logs"] = "lua/aigc/cli/logs.lua",
    ["aigc.cli.models"] = "lua/aigc/cli/models.lua",
    ["aigc.cli.prompt"] = "lua/aigc/cli/prompt.lua",
    ["aigc.cli.run"] = "lua/aigc/cli/run.lua",
    ["aigc.cli.speak"] = "lua/aigc/cli/speak.lua",
    ["aigc.cli.templates"] = "lua/aigc/cli/templates.lua",
    ["aigc.assertions"] = "lua/aigc/assertions.lua",
    ["aigc.batch"] = "lua/aigc/batch.lua",
    ["aigc.batch_backend"] = "lua/aigc/batch_backend.lua",
    ["aigc.cache"] = "lua/aigc/cache.lua",
    ["aigc.cassette"] = "lua/aigc/cassette.lua",
    -- the cassette replay server: run as its own process, Lua 5.4 + luv + lua-cjson (as aigc.devserver)
    ["aigc.cassette_mask"] = "lua/aigc/cassette_mask.lua",
    ["aigc.cassette_server"] = "lua/aigc/cassette_server.lua",
    ["aigc.conversation"] = "lua/aigc/conversation.lua",
    ["aigc.conversation_plan"] = "lua/aigc/conversation_plan.lua",
    ["aigc.conversation_busy"] = "lua/aigc/conversation_busy.lua",
    ["aigc.conversation_save"] = "lua/aigc/conversation_save.lua",
    ["aigc.dialogue"] = "lua/aigc/dialogue.lua",
    ["aigc.hooks"] = "lua/aigc/hooks.lua",
    ["aigc.future"] = "lua/aigc/future.lua",
    ["aigc.judge"] = "lua/aigc/judge.lua",
    ["aigc.promptlog"] = "lua/aigc/promptlog.lua",
    ["aigc.promptlog_store"] = "lua/aigc/promptlog_store.lua",
    ["aigc.promptlog_pending"] = "lua/aigc/promptlog_pending.lua",
    ["aigc.promptlog_redact"] = "lua/aigc/promptlog_redact.lua",
    ["aigc.promptlog_kept"] = "lua/aigc/promptlog_kept.lua",
    ["aigc.ratelimit"] = "lua/aigc/ratelimit.lua",
    ["aigc.runfile"] = "lua/aigc/runfile.lua",
    ["aigc.runner"] = "lua/aigc/runner.lua",
    ["aigc.runner_digest"] = "lua/aigc/runner_digest.lua",
    ["aigc.runner_input"] = "lua/aigc/runner_input.lua",
    ["aigc.runner_responses"] = "lua/aigc/runner_responses.lua",
    ["aigc.runner_strategy"] = "lua/aigc/runner_strategy.lua",
    ["aigc.schema"] = "lua/aigc/schema.lua",
    ["aigc.schema_compile"] = "lua/aigc/schema_compile.lua",
    ["aigc.schema_format"] = "lua/aigc/schema_format.lua",
    ["aigc.schema_integers"] = "lua/aigc/schema_integers.lua",
    ["aigc.schema_regex"] = "lua/aigc/schema_regex.lua",
    ["aigc.sentences"] = "lua/aigc/sentences.lua",
    ["aigc.sentences_calls"] = "lua/aigc/sentences_calls.lua",
    ["aigc.sentences_words"] = "lua/aigc/sentences_words.lua",
    ["aigc.strategy"] = "lua/aigc/strategy.lua",
    ["aigc.strategy_shared"] = "lua/aigc/strategy_shared.lua",
    ["aigc.stream"] = "lua/aigc/stream.lua",
    ["aigc.task"] = "lua/aigc/task.lua",
    ["aigc.client_loop"] = "lua/aigc/client_loop.lua",
    ["aigc.template"] = "lua/aigc/template.lua",
    ["aigc.tools"] = "lua/aigc/tools.lua",
    ["aigc.usage"] = "lua/aigc/usage.lua",
    ["aigc.utc"] = "lua/aigc/utc.lua",
    ["aigc.util"] = "lua/aigc/util.lua",
    ["aigc.credentials"] = "lua/aigc/credentials.lua",
  },
  install = {
    bin = { aigc = "bin/aigc" },   -- the command (issue 16)
  },
}
