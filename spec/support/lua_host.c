/*
** lua_host.c — a minimal Lua interpreter for the sanitizer suite, for
** whichever Lua `make asan LUA_VERSION=...` builds (5.1 to 5.4, LuaJIT 2.1:
** below 5.3, Debian's compat-5.3.h gives it the few newer functions it
** uses; it needs nothing from src/, so it builds with the Lua headers alone).
**
** `make asan` links it with -fsanitize=address,undefined, so the sanitizer
** runtime lives in the main program and the instrumented aigc/core.so can
** be loaded into it. Preloading libasan into Debian's lua5.4 instead would
** also preload it into every child the specs start (the local server, nginx,
** node), whose own reports would then be mixed with ours.
**
**   build/asan/lua SCRIPT [ARGS...]      like `lua5.4 SCRIPT ARGS...`
**
** It also gives scripts a memory limit on Lua's allocator, for the specs
** that make Lua run out of memory at a chosen point (a real "not enough
** memory" error, not a simulated one):
**   aigc_host_memlimit(bytes)   Lua may hold at most `bytes` (nil or 0:
**                               no limit); returns the bytes in use now
**   aigc_host_failat(n [, run]) the n-th allocation that grows from now
**                               fails, and the run-1 after it (0: none)
**
** And a second state, for the specs of what lua_close leaves behind in a
** host that goes on (a lock still held, a descriptor still open):
**   aigc_host_closed_state(code, ...)   runs code (with the ARGS as ...) in
**                               a new lua_State with the standard libraries
**                               and this one's package.path and cpath, then
**                               lua_close's it; returns true, or false and
**                               the error
**
** Ctrl-C (SIGINT) works as in lua.c: the handler installs a debug hook
** that raises "interrupted!" (the interrupt specs send it).
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"
#if LUA_VERSION_NUM < 503
#include "compat-5.3.h"   /* LUA_OK, luaL_tolstring, luaL_traceback */
#endif

/* Lua's own allocator, wrapped: counts what Lua holds, refuses growth
   beyond the limit (Lua then collects and raises "not enough memory"). */
static lua_Alloc base_alloc;
static void *base_ud;
static size_t in_use, limit;

/* aigc_host_failat: the countdown to the growth that fails, then how
   many growths fail in a row from there. */
static long fail_countdown, fail_run, fail_left;

static void *limited_alloc (void *ud, void *ptr, size_t osize, size_t nsize) {
  void *p;
  size_t old = ptr != NULL ? osize : 0;
  (void)ud;
  if (nsize > old && limit > 0 && in_use - old + nsize > limit)
    return NULL;
  if (nsize > old && fail_countdown > 0 && --fail_countdown == 0)
    fail_left = fail_run;
  if (nsize > old && fail_left > 0) {
    fail_left--;
    return NULL;
  }
  p = base_alloc(base_ud, ptr, osize, nsize);
  if (p != NULL || nsize == 0)
    in_use = (in_use > old ? in_use - old : 0) + nsize;
  return p;
}

/* SIGINT as lua.c handles it (lstop / laction / setsignal there). */
static lua_State *globalL;

static void lstop (lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

static void setsignal (int sig, void (*handler)(int)) {
  struct sigaction sa;
  sa.sa_handler = handler;
  sa.sa_flags = 0;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
}

static void laction (int i) {
  int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
  setsignal(i, SIG_DFL);   /* a second Ctrl-C ends the process */
  lua_sethook(globalL, lstop, flag, 1);
}

static int host_memlimit (lua_State *L) {
  lua_Integer n = luaL_optinteger(L, 1, 0);
  limit = n > 0 ? (size_t)n : 0;
  lua_pushinteger(L, (lua_Integer)in_use);
  return 1;
}

/* aigc_host_failat(n [, run]): the n-th growth from now fails, and the
   run-1 after it (default 1); 0 or nil: none fails. */
static int host_failat (lua_State *L) {
  fail_left = 0;
  fail_run = (long)luaL_optinteger(L, 2, 1);
  fail_countdown = (long)luaL_optinteger(L, 1, 0);
  return 0;
}

/* Copies this state's package.<field> (a string) into L2's. */
static void copy_package_field (lua_State *L, lua_State *L2, const char *field) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, field);
  lua_getglobal(L2, "package");
  lua_pushstring(L2, lua_tostring(L, -1));
  lua_setfield(L2, -2, field);
  lua_pop(L2, 1);
  lua_pop(L, 2);
}

static int host_closed_state (lua_State *L) {
  size_t len;
  const char *code = luaL_checklstring(L, 1, &len);
  int i, n = lua_gettop(L), status;
  lua_State *L2;
  for (i = 2; i <= n; i++)   /* (before L2 is made: nothing raises while it lives) */
    luaL_checkstring(L, i);
  L2 = luaL_newstate();
  if (L2 == NULL)
    return luaL_error(L, "luaL_newstate failed");
  luaL_openlibs(L2);
  copy_package_field(L, L2, "path");
  copy_package_field(L, L2, "cpath");
  status = luaL_loadbuffer(L2, code, len, "=closed_state");
  if (status == LUA_OK) {
    for (i = 2; i <= n; i++)
      lua_pushstring(L2, lua_tostring(L, i));
    status = lua_pcall(L2, n - 1, 0, 0);
  }
  lua_pushboolean(L, status == LUA_OK);
  if (status != LUA_OK)
    lua_pushstring(L, lua_tostring(L2, -1));
  lua_close(L2);
  return status == LUA_OK ? 1 : 2;
}

static int traceback (lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL)
    msg = luaL_tolstring(L, 1, NULL);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int main (int argc, char **argv) {
  lua_State *L;
  int i, status;
  if (argc < 2) {
    fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argv[0]);
    return 2;
  }
  L = luaL_newstate();
  if (L == NULL)
    return 1;
  base_alloc = lua_getallocf(L, &base_ud);
  in_use = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
  lua_setallocf(L, limited_alloc, NULL);
  luaL_openlibs(L);
  lua_register(L, "aigc_host_memlimit", host_memlimit);
  lua_register(L, "aigc_host_failat", host_failat);
  lua_register(L, "aigc_host_closed_state", host_closed_state);
  /* arg, as lua.c builds it: arg[0] is the script, arg[-1] the interpreter */
  lua_createtable(L, argc, 2);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");
  lua_pushcfunction(L, traceback);
  status = luaL_loadfile(L, argv[1]);
  /* (room for them: the stack has LUA_MINSTACK slots, and a run of the
     whole suite passes ~220 spec files; without it they were written past
     the stack's end, a SEGV in lua_pcall on Lua 5.1) */
  if (status == LUA_OK && !lua_checkstack(L, argc)) {
    lua_pushliteral(L, "too many arguments");
    status = LUA_ERRRUN;
  }
  if (status == LUA_OK) {
    for (i = 2; i < argc; i++)
      lua_pushstring(L, argv[i]);
    globalL = L;
    setsignal(SIGINT, laction);
    status = lua_pcall(L, argc - 2, 0, 1);
    setsignal(SIGINT, SIG_DFL);
  }
  if (status != LUA_OK)
    fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
  lua_close(L);
  return status == LUA_OK ? 0 : 1;
}
