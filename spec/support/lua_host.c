/*
** lua_host.c — a minimal Lua 5.4 interpreter for the sanitizer suite.
**
** `make asan` links it with -fsanitize=address,undefined, so the sanitizer
** runtime lives in the main program and the instrumented aigc/core.so can
** be loaded into it. Preloading libasan into Debian's lua5.4 instead would
** also preload it into every child the specs start (the local server, nginx,
** node), whose own reports would then be mixed with ours.
**
**   build/asan/lua SCRIPT [ARGS...]      like `lua5.4 SCRIPT ARGS...`
*/
#include <stdio.h>
#include <stdlib.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

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
  luaL_openlibs(L);
  /* arg, as lua.c builds it: arg[0] is the script, arg[-1] the interpreter */
  lua_createtable(L, argc, 2);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");
  lua_pushcfunction(L, traceback);
  status = luaL_loadfile(L, argv[1]);
  if (status == LUA_OK) {
    for (i = 2; i < argc; i++)
      lua_pushstring(L, argv[i]);
    status = lua_pcall(L, argc - 2, 0, 1);
  }
  if (status != LUA_OK)
    fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
  lua_close(L);
  return status == LUA_OK ? 0 : 1;
}
