/*
** home.c — the state's sentinel (home.h).
**
** THE RE-ENTRANCY RULE (aigc.h): the sentinel's __gc walks its table
** with lua_next, and the frees it calls run no Lua and allocate nothing of
** Lua's, so no collection clears an entry under the walk (one would leave
** a dead key, which lua_next still steps over).
*/
#include <stdint.h>

#include "home.h"
#include "util.h"

typedef struct aigc_home {
  int armed;   /* registered: only then is its __gc the state's close */
  int done;    /* its __gc has freed them: the state is closing */
} aigc_home;

static const char home_key = 'h';

static int home_gc (lua_State *L) {
  aigc_home *h = (aigc_home *)lua_touserdata(L, 1);
  lua_Debug ar;
  /* lua_close calls it with nothing below. Else a collection step inside
     another finalizer ran it (5.1: a big allocation in a finalizer at
     close runs the pending ones): the objects may be in use there, and
     are left as they were (what the sentinel cannot free then leaks). */
  if (h == NULL || !h->armed || lua_getstack(L, 1, &ar))
    return 0;
  if (lua_getiuservalue(L, 1, 1) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {   /* object -> its kind */
      const aigc_home_kind *kind = (const aigc_home_kind *)lua_touserdata(L, -1);
      lua_pop(L, 1);
      kind->free_c(L, lua_touserdata(L, -1));   /* (runs no Lua: the table stays as it is) */
    }
  }
  h->done = 1;
  return 0;
}

/* The state's sentinel, its table of objects above it: made when absent. */
static aigc_home *push_home (lua_State *L) {
  aigc_home *h;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &home_key) == LUA_TUSERDATA) {
    h = (aigc_home *)lua_touserdata(L, -1);
    lua_getiuservalue(L, -1, 1);
    lua_remove(L, -2);
    return h;
  }
  lua_pop(L, 1);
  h = (aigc_home *)lua_newuserdatauv(L, sizeof *h, 1);
  h->armed = h->done = 0;
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setiuservalue(L, -2, 1);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, home_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &home_key);
  h->armed = 1;
  lua_getiuservalue(L, -1, 1);
  lua_remove(L, -2);
  return h;
}

void aigc_home_open (lua_State *L) {
  push_home(L);   /* now: older than the game's objects, finalized after them */
  lua_pop(L, 1);
}

void aigc_home_join (lua_State *L, int idx, const aigc_home_kind *kind) {
  aigc_home *h;
  idx = lua_absindex(L, idx);
  h = push_home(L);
  if (h->done && !aigc_close_finalizes_late_objects())
    aigc_error_at_caller(L, "aigc: the Lua state is closing");
  lua_pushvalue(L, idx);
  lua_pushlightuserdata(L, (void *)(uintptr_t)kind);   /* (a const static of its module) */
  lua_rawset(L, -3);
  lua_pop(L, 1);
}
