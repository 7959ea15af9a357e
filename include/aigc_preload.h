/*
** aigc_preload.h — for C/C++ hosts that link aigc statically (libaigc.a,
** `make host`): its Lua modules are compiled in, so nothing is read from
** disk. After luaL_openlibs(L), call aigc_preload(L); then `require "aigc"`
** (and aigc.core, aigc.client, ...) loads from memory. Call it once per
** lua_State, in any number of lua_States on any threads: aigc keeps no
** mutable C global (scripts/check-globals.lua), and libcurl's global init
** runs once whichever state opens aigc first. One lua_State must not be
** used by two threads at once (Lua's own rule); each client belongs to the
** state that made it. See examples/host/README.md.
*/
#ifndef AIGC_PRELOAD_H
#define AIGC_PRELOAD_H

#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
** package.preload entries for aigc.core and every module of lua/aigc/.
** Returns 0 (LUA_OK), or as lua_pcall does an error status with the message
** on the top of L's stack (pop it): LUA_ERRRUN when L has no package library
** (luaL_openlibs first) or package.preload is not a table, LUA_ERRMEM when
** memory ran out (with nothing pushed when L's stack could not grow). It
** never raises nor aborts the host; on an error, `require "aigc"` would not
** find aigc in memory.
*/
int aigc_preload (lua_State *L);

/* The C module itself (what require "aigc.core" runs). */
int luaopen_aigc_core (lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
