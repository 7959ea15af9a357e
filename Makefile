# aigc — development Makefile.
#
# Variable names are LuaRocks' own (LUA_INCDIR, LIBFLAG, INST_LIBDIR,
# INST_LUADIR, CURL_INCDIR, CURL_LIBDIR), all settable from the command line
# or the environment, so `luarocks make` and this file agree.
#
#   make          build aigc/core.so (Lua 5.4)
#   make LUA_VERSION=5.1|5.2|5.3|5.4|jit   build for that Lua (LuaJIT: jit) into
#                 its own folder (`make cpath LUA_VERSION=...` prints it)
#   eval "$$(make env)"   then `lua5.4 any.lua` finds aigc in this checkout (after `make`;
#                 with LUA_VERSION=..., the variables that interpreter reads)
#   make version  print the version (AIGC_VERSION in src/aigc.h, its one source)
#   make demo     install what is missing, build, run the scripted dialogue
#   make test     install what is missing, build, run every suite
#   make server   run the local OpenAI-compatible server in the foreground
#   make love     the LÖVE tavern (examples/love) against the bundled server
#   make bench    run the benchmarks (bench/README.md)
#   make install  copy the module into INST_LIBDIR / INST_LUADIR (with
#                 LUA_VERSION=...: that version's; LuaJIT uses 5.1's), the aigc
#                 command into INST_BINDIR
#   make docs     the API reference (LDoc) into build/docs
#   make host     libaigc.a (the core and its Lua modules compiled in) and the
#                 C host example into build/c-host/ (examples/host/README.md);
#                 make host-tsan / host-asan: the same under TSan / ASan+UBSan
#   make tsan     the module under TSan (clang) into build/tsan/aigc/core.so

LUA         ?= lua5.4
LUA_VERSION ?= 5.4
# The Lua the module is built for: 5.1, 5.2, 5.3, 5.4 or jit (LuaJIT 2.1).
# Its headers; compat-5.3.h (Debian's lua-compat53-dev) for 5.1, 5.2 and
# LuaJIT comes from LUA_INCDIR, or for LuaJIT from the 5.1 folder, searched
# after LuaJIT's own so that <lua.h> stays LuaJIT's.
ifeq ($(LUA_VERSION),jit)
LUA_INCDIR  ?= /usr/include/luajit-2.1
COMPAT_INCDIR ?= /usr/include/lua5.1
LUA_LIB     ?= -lluajit-5.1
else
LUA_INCDIR  ?= /usr/include/lua$(LUA_VERSION)
COMPAT_INCDIR ?=
LUA_LIB     ?= -llua$(LUA_VERSION)
endif
MULTIARCH   := $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)
CURL_INCDIR ?= $(if $(MULTIARCH),/usr/include/$(MULTIARCH),/usr/include)
CURL_LIBDIR ?= $(if $(MULTIARCH),/usr/lib/$(MULTIARCH),/usr/lib)

CC          ?= cc
CFLAGS      ?= -O2 -g
LIBFLAG     ?= -shared
# The strict set from STYLE.md; WERROR=-Werror in CI turns warnings into failures.
WARN        ?= -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
               -Wpointer-arith -Wcast-qual -Wundef -Wformat=2 -Wvla
WERROR      ?=
SANITIZE    ?=
ALL_CFLAGS   = $(CFLAGS) $(WARN) $(WERROR) $(SANITIZE) -std=c99 -D_POSIX_C_SOURCE=200809L \
               -fPIC -fvisibility=hidden $(LUA_CFLAGS) -I$(CURL_INCDIR) -Isrc
LUA_CFLAGS   = -I$(LUA_INCDIR) $(if $(COMPAT_INCDIR),-idirafter $(COMPAT_INCDIR))

# Where `make install` puts the module: Lua's own default search paths for
# the version (LuaJIT reads 5.1's, like Debian's lua-* packages for it).
LUA_ABI      = $(if $(filter jit,$(LUA_VERSION)),5.1,$(LUA_VERSION))
# The interpreter of that version (the installed aigc command's #! line).
LUA_INTERP   = $(if $(filter jit,$(LUA_VERSION)),luajit,lua$(LUA_VERSION))
INST_PREFIX ?= /usr/local
INST_LIBDIR ?= $(INST_PREFIX)/lib/lua/$(LUA_ABI)
INST_LUADIR ?= $(INST_PREFIX)/share/lua/$(LUA_ABI)
INST_BINDIR ?= $(INST_PREFIX)/bin

# Each Lua's build in its own folder: 5.4 (the default) keeps the module at
# aigc/core.so (`.busted` and the specs load it from there) and its objects
# in build/obj; any other version builds into build/V/ (objects build/V/obj,
# module build/V/aigc/core.so).
ifeq ($(LUA_VERSION),5.4)
BUILD       ?= build
MODULE      ?= aigc/core.so
else
BUILD       ?= build/$(LUA_VERSION)
MODULE      ?= build/$(LUA_VERSION)/aigc/core.so
endif
# Plain-C parts with no Lua in them: unit-tested and fuzzed on their own.
PURE_SRC     = src/buf.c src/sse.c src/json.c src/jsonout.c src/accum_keys.c src/accum_shape.c src/accum.c src/accum_scan.c src/raccum.c \
               src/poller.c src/base64.c src/vec.c src/sha256.c src/md5.c src/syserr.c
CORE_SRC     = $(PURE_SRC) $(filter-out $(PURE_SRC),$(sort $(wildcard src/*.c)))
CORE_OBJ     = $(CORE_SRC:src/%.c=$(BUILD)/obj/%.o)
HEADERS      = $(wildcard src/*.h)
LUA_SRC      = $(sort $(wildcard lua/aigc/*.lua))
# Every Lua file of the package, subfolders (the devserver's) included.
# (Defined before the rules that list it as prerequisites: make expands
# those when it reads the rule, and an empty list there left libaigc.a
# embedding the old modules after a Lua file changed.)
LUA_TREE     = $(sort $(shell find lua/aigc -name '*.lua' 2>/dev/null))

# The version's one source; the rockspec's name and the README repeat it
# (spec/version_spec.lua checks that they agree).
VERSION     := $(shell sed -n 's/^\#define AIGC_VERSION "\(.*\)"/\1/p' src/aigc.h)
ROCKSPEC     = rockspec/aigc-$(VERSION)-1.rockspec

.PHONY: all asan demo love test server bench install uninstall clean lint ctest fuzz deps-demo deps-test deps-bench \
        env version cpath docs host host-tsan host-asan tsan

all: $(MODULE)

$(MODULE): $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LIBFLAG) -o $@ $(CORE_OBJ) -L$(CURL_LIBDIR) -lcurl $(LDFLAGS)

$(BUILD)/obj/%.o: src/%.c $(HEADERS) Makefile
	@mkdir -p $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The module built with ASan + UBSan into build/asan/aigc/core.so, and a
# Lua interpreter with the sanitizer runtime linked in, build/asan/lua
# (spec/support/lua_host.c): make test runs the specs with them. Another
# LUA_VERSION: build/asan-V/lua and build/asan-V/aigc/core.so.
ASAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
ASAN_DIR   = $(if $(filter 5.4,$(LUA_VERSION)),build/asan,build/asan-$(LUA_VERSION))
ASAN_OBJ   = $(if $(filter 5.4,$(LUA_VERSION)),build/asan-obj,build/asan-$(LUA_VERSION)/obj)
asan: $(ASAN_DIR)/lua
	@$(MAKE) --no-print-directory BUILD=$(ASAN_OBJ) SANITIZE="$(ASAN_FLAGS)" CFLAGS="-O1 -g" \
	  MODULE=$(ASAN_DIR)/aigc/core.so $(ASAN_DIR)/aigc/core.so

$(ASAN_DIR)/lua: spec/support/lua_host.c
	@mkdir -p $(ASAN_DIR)
	$(CC) -O1 -g $(ASAN_FLAGS) $(LUA_CFLAGS) -o $@ $< $(LUA_LIB) -lm -ldl

# A C/C++ host's aigc (issue 13 item 3): libaigc.a holds the core's objects
# and every module of lua/aigc/ (subfolders too) but the bundled server, compiled in
# (scripts/embed-lua.lua: aigc_preload(L) in include/aigc_preload.h puts them in
# package.preload), so the host reads no file; examples/host/host.c runs two
# lua_States on two threads with it. Link: libaigc.a, Lua, -lcurl -lpthread.
HOST_DIR     ?= build/c-host$(if $(filter-out 5.4,$(LUA_VERSION)),-$(LUA_VERSION))
HOST_MODULES  = $(filter-out lua/aigc/devserver.lua lua/aigc/devserver/%,$(LUA_TREE))
HOST_LIBS     = $(LUA_LIB) -L$(CURL_LIBDIR) -lcurl -lpthread -lm -ldl
host:
	@$(MAKE) --no-print-directory BUILD=$(HOST_DIR) MODULE=$(HOST_DIR)/aigc/core.so $(HOST_DIR)/aigc-host \
	  $(HOST_DIR)/aigc-host-media $(HOST_DIR)/aigc-host-preload $(HOST_DIR)/aigc-host-threads \
	  $(HOST_DIR)/aigc-host-curlinfo
TSAN_FLAGS    = -fsanitize=thread -fno-omit-frame-pointer
host-tsan:
	@$(MAKE) --no-print-directory host HOST_DIR=build/c-host-tsan CC=clang CFLAGS="-O1 -g" \
	  SANITIZE="$(TSAN_FLAGS)"
# The module under TSan (clang, Lua 5.4) at build/tsan/aigc/core.so: a TSan host that loads aigc
# from disk (aigc-host-threads BASE_URL SECONDS build/tsan/?.so PATH) checks dlopen/dlclose too.
tsan:
	@$(MAKE) --no-print-directory BUILD=build/tsan/obj MODULE=build/tsan/aigc/core.so CC=clang CFLAGS="-O1 -g" \
	  SANITIZE="$(TSAN_FLAGS)" build/tsan/aigc/core.so
host-asan:
	@$(MAKE) --no-print-directory host HOST_DIR=build/c-host-asan CFLAGS="-O1 -g" SANITIZE="$(ASAN_FLAGS)"

$(BUILD)/libaigc.a: $(CORE_OBJ) $(BUILD)/obj/aigc_modules.o
	rm -f $@
	ar rcs $@ $^

$(BUILD)/aigc_modules.c: $(HOST_MODULES) scripts/embed-lua.lua
	@mkdir -p $(BUILD)
	lua5.4 scripts/embed-lua.lua $@ $(HOST_MODULES)

$(BUILD)/obj/aigc_modules.o: $(BUILD)/aigc_modules.c include/aigc_preload.h
	@mkdir -p $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -Iinclude -c -o $@ $<

$(BUILD)/aigc-host: examples/host/host.c include/aigc_preload.h $(BUILD)/libaigc.a
	$(CC) $(ALL_CFLAGS) -Iinclude -o $@ examples/host/host.c $(BUILD)/libaigc.a $(HOST_LIBS) $(LDFLAGS)

# (scripts/host-test.sh: four threads' media calls, lua_close with them in flight)
$(BUILD)/aigc-host-media: spec/c/host_media_probe.c spec/c/host_arena.h include/aigc_preload.h $(BUILD)/libaigc.a
	$(CC) $(ALL_CFLAGS) -Iinclude -o $@ spec/c/host_media_probe.c $(BUILD)/libaigc.a $(HOST_LIBS) $(LDFLAGS)

# (scripts/host-test.sh: aigc_preload on a state without the package library returns its error)
$(BUILD)/aigc-host-preload: spec/c/host_preload_probe.c include/aigc_preload.h $(BUILD)/libaigc.a
	$(CC) $(ALL_CFLAGS) -Iinclude -o $@ spec/c/host_preload_probe.c $(BUILD)/libaigc.a $(HOST_LIBS) $(LDFLAGS)

# (scripts/host-test.sh, spec/host_threads_spec.lua: states made and closed on five threads at
# once, streams canceled and abandoned; aigc from libaigc.a or from disk)
$(BUILD)/aigc-host-threads: spec/c/host_threads_probe.c spec/c/host_arena.h include/aigc_preload.h $(BUILD)/libaigc.a
	$(CC) $(ALL_CFLAGS) -Iinclude -o $@ spec/c/host_threads_probe.c $(BUILD)/libaigc.a $(HOST_LIBS) $(LDFLAGS)

# (scripts/host-test.sh, spec/host_threads_spec.lua: eight states open aigc at once; libcurl's
# curl_version_info stood in by one TSan sees, which must be called once)
$(BUILD)/aigc-host-curlinfo: spec/c/host_curlinfo_probe.c include/aigc_preload.h $(BUILD)/libaigc.a
	$(CC) $(ALL_CFLAGS) -Iinclude -o $@ spec/c/host_curlinfo_probe.c $(BUILD)/libaigc.a $(HOST_LIBS) $(LDFLAGS)

# The package.cpath template of the module built for LUA_VERSION
# (scripts/run-tests.sh asks it, so the folder is decided here only).
MODULE_ROOT  = $(or $(patsubst %/aigc/core.so,%,$(filter %/aigc/core.so,$(MODULE))),.)
cpath:
	@echo '$(MODULE_ROOT)/?.so'

# Shell lines that let `lua5.4 script.lua` (any script, the examples too)
# `require "aigc"` from this checkout: eval "$$(make env)" (another Lua:
# eval "$$(make env LUA_VERSION=5.1)", then lua5.1 or, for jit, luajit).
# Lua 5.2-5.4 read LUA_PATH_5_x / LUA_CPATH_5_x before LUA_PATH / LUA_CPATH;
# 5.1 and LuaJIT read only LUA_PATH / LUA_CPATH. Whatever was there stays
# after this checkout's entries (";;" is Lua's default path).
ENV_SUFFIX   = $(if $(filter 5.2 5.3 5.4,$(LUA_VERSION)),_$(subst .,_,$(LUA_VERSION)))
env:
	@if [ ! -f $(MODULE) ]; then echo "make env: run make$(if $(filter-out 5.4,$(LUA_VERSION)), LUA_VERSION=$(LUA_VERSION)) first ($(MODULE) is not built)" >&2; fi
	@printf "export LUA_PATH$(ENV_SUFFIX)='%s/lua/?.lua;%s/lua/?/init.lua;'\"\$${LUA_PATH$(ENV_SUFFIX):-;}\"\n" "$(CURDIR)" "$(CURDIR)"
	@printf "export LUA_CPATH$(ENV_SUFFIX)='%s/?.so;'\"\$${LUA_CPATH$(ENV_SUFFIX):-;}\"\n" "$(abspath $(MODULE_ROOT))"

version:
	@echo $(VERSION)

deps-demo:
	@bash scripts/deps.sh demo
deps-test:
	@bash scripts/deps.sh test
deps-bench:
	@bash scripts/deps.sh bench

# The main job: a scripted dialogue through the module, against the bundled
# local server unless OPENAI_API_KEY / OPENAI_BASE_URL point elsewhere.
demo: deps-demo
	@$(MAKE) --no-print-directory all
	@bash scripts/demo.sh

# The LÖVE game (issue 13): LuaJIT's build of the module, then the launcher
# (the bundled server unless OPENAI_API_KEY / OPENAI_BASE_URL are set).
love:
	@bash scripts/deps.sh love
	@$(MAKE) --no-print-directory all LUA_VERSION=jit
	@bash examples/love/run.sh

# Every suite; the last line printed is "N passed, N failed[, N skipped]".
test: deps-test
	@$(MAKE) --no-print-directory all WERROR=-Werror
	@bash scripts/run-tests.sh

# The bundled server needs Lua 5.4 (with luv and lua-cjson), whatever Lua
# the module is built for.
DEVSERVER_LUA ?= lua5.4
server: deps-demo
	$(DEVSERVER_LUA) -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path; package.cpath="./?.so;"..package.cpath' \
	  lua/aigc/devserver.lua $(SERVER_ARGS)

bench: deps-bench
	@$(MAKE) --no-print-directory all
	@bash bench/run.sh

# C unit tests for the pure-C parts (also run by `make test`).
# The plain-C sources are compiled once into objects every test links (each
# test compiling all of them again took CI's ctest suite ~110 s beside the
# other lanes).
CTESTS = $(patsubst spec/c/%_test.c,$(BUILD)/ctest/%_test,$(wildcard spec/c/*_test.c))
CTEST_OBJ = $(patsubst src/%.c,$(BUILD)/ctest/obj/%.o,$(PURE_SRC))
CTEST_CFLAGS = $(CFLAGS) $(WARN) $(WERROR) $(SANITIZE) -std=c99 -D_POSIX_C_SOURCE=200809L -Isrc -Ispec/c
$(BUILD)/ctest/obj/%.o: src/%.c $(HEADERS)
	@mkdir -p $(BUILD)/ctest/obj
	$(CC) $(CTEST_CFLAGS) -c -o $@ $<
$(BUILD)/ctest/%_test: spec/c/%_test.c $(CTEST_OBJ) $(HEADERS) spec/c/ctest.h spec/c/faultalloc.h spec/c/json_nodes.h
	@mkdir -p $(BUILD)/ctest
	$(CC) $(CTEST_CFLAGS) -o $@ $< $(CTEST_OBJ) -lm -lpthread
ctest: $(CTESTS)
	@for t in $(CTESTS); do $$t || exit 1; done

# libFuzzer harnesses (clang). FUZZ_SECONDS per harness.
FUZZ_SECONDS ?= 60
# (the plain-C sources are compiled once, instrumented for coverage with
# fuzzer-no-link, and linked by every harness: ctest's reason)
FUZZERS = $(patsubst spec/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard spec/fuzz/fuzz_*.c))
FUZZ_OBJ = $(patsubst src/%.c,$(BUILD)/fuzz/obj/%.o,$(PURE_SRC))
FUZZ_CFLAGS = -g -O1 -fno-sanitize-recover=all -std=c99 -D_POSIX_C_SOURCE=200809L -Isrc
$(BUILD)/fuzz/obj/%.o: src/%.c $(HEADERS)
	@mkdir -p $(BUILD)/fuzz/obj
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<
$(BUILD)/fuzz/%: spec/fuzz/%.c $(FUZZ_OBJ) $(HEADERS)
	@mkdir -p $(BUILD)/fuzz
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_OBJ) -lm -lpthread
fuzz: $(FUZZERS)
	@for f in $(FUZZERS); do \
	  mkdir -p $(BUILD)/corpus/$$(basename $$f); \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    $(BUILD)/corpus/$$(basename $$f) spec/fuzz/seeds/$$(basename $$f) || exit 1; \
	done

lint:
	luacheck --quiet lua spec examples bench scripts

install: $(MODULE)
	install -d $(DESTDIR)$(INST_LIBDIR)/aigc $(DESTDIR)$(INST_LUADIR)/aigc
	install -m 0755 $(MODULE) $(DESTDIR)$(INST_LIBDIR)/aigc/core.so
	@for f in $(LUA_TREE:lua/%=%); do \
	  echo "install -D -m 0644 lua/$$f $(DESTDIR)$(INST_LUADIR)/$$f"; \
	  install -D -m 0644 "lua/$$f" "$(DESTDIR)$(INST_LUADIR)/$$f" || exit 1; \
	done
	install -d $(DESTDIR)$(INST_BINDIR)
	sed '1s|.*|#!/usr/bin/env $(LUA_INTERP)|' bin/aigc > $(DESTDIR)$(INST_BINDIR)/aigc
	chmod 0755 $(DESTDIR)$(INST_BINDIR)/aigc

# The API reference of every public module (config.ld), with Debian's lua-ldoc.
# spec/docs_spec.lua fails on any LDoc warning. Run under Lua 5.1: Debian's
# LDoc has no built-in Markdown, and lua-markdown exists for 5.1 only.
LDOC ?= lua5.1 $(shell command -v ldoc)
docs:
	$(LDOC) .

uninstall:
	rm -rf $(DESTDIR)$(INST_LIBDIR)/aigc $(DESTDIR)$(INST_LUADIR)/aigc $(DESTDIR)$(INST_BINDIR)/aigc

clean:
	rm -rf $(BUILD) aigc
