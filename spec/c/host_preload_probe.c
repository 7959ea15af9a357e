/*
** host_preload_probe.c — aigc_preload's contract (include/aigc_preload.h)
** in a C host: called on a lua_State without the package library it raised
** outside any protected call, and Lua's panic aborted the host process. It
** returns an error status with the message on the stack now; the host goes
** on, opens the libraries, and aigc loads. Built by `make host` beside
** examples/host; scripts/host-test.sh runs it (plain, TSan, ASan, LuaJIT).
** Prints "aigc-host-preload: ok" and exits 0 when every check held.
*/
#include <stdio.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "aigc_preload.h"

static int failures;

static void check (int ok, const char *what) {
  if (!ok) {
    failures++;
    printf("aigc-host-preload: FAILED: %s\n", what);
  }
}

/* aigc_preload(L) fails with LUA_ERRRUN, `says` in the one value it pushed. */
static void refused (lua_State *L, const char *says) {
  int top = lua_gettop(L);
  int rc = aigc_preload(L);
  const char *msg;
  check(rc == LUA_ERRRUN, says);
  check(lua_gettop(L) == top + 1, "one value pushed (the message)");
  msg = lua_tostring(L, -1);
  check(msg != NULL && strstr(msg, says) != NULL, says);
  if (msg != NULL)
    printf("aigc-host-preload: refused: %s\n", msg);
  lua_settop(L, top);
}

static int run (lua_State *L, const char *code) {
  return luaL_loadstring(L, code) == 0 && lua_pcall(L, 0, 1, 0) == 0;
}

int main (void) {
  lua_State *L = luaL_newstate();
  int top;
  if (L == NULL) {
    printf("aigc-host-preload: no lua_State\n");
    return 1;
  }
  refused(L, "no package library (luaL_openlibs first)");   /* (it aborted here) */
  luaL_openlibs(L);
  check(run(L, "KEPT = package.preload; package.preload = nil"), "package.preload = nil");
  lua_pop(L, 1);
  refused(L, "package.preload is not a table");
  check(run(L, "package.preload = KEPT"), "package.preload back");   /* (require's own) */
  lua_pop(L, 1);
  top = lua_gettop(L);
  check(aigc_preload(L) == 0, "0 once the libraries are open");
  check(lua_gettop(L) == top, "nothing left on the stack");
  check(run(L, "return type(require('aigc')._VERSION)") && lua_isstring(L, -1)
        && strcmp(lua_tostring(L, -1), "string") == 0, "require 'aigc' loads from memory");
  lua_close(L);
  if (failures == 0)
    printf("aigc-host-preload: ok\n");
  return failures == 0 ? 0 : 1;
}
