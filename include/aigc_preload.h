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

/* package.preload entries for aigc.core and every module of lua/aigc/. */
void aigc_preload (lua_State *L);

/* The C module itself (what require "aigc.core" runs). */
int luaopen_aigc_core (lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
