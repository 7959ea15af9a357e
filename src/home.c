/*
** home.c — the state's sentinel (home.h).
**
** THE RE-ENTRANCY RULE (aigc.h): the sentinel's __gc takes each object
** off the list before freeing it and reads the list's head again after
** each, so a free that ran Lua (none does) could not leave it walking a
** node that is gone.
*/
#include "home.h"
#include "util.h"

typedef struct aigc_home {
  aigc_home_link *live;   /* objects whose C state is not yet freed */
  int done;               /* its __gc has freed them: the state is closing */
} aigc_home;

static const char home_key = 'h';

void aigc_home_leave (aigc_home_link *link) {
  if (link->prev == NULL)
    return;
  if (link->next != NULL)
    link->next->prev = link->prev;
  *link->prev = link->next;
  link->next = NULL;
  link->prev = NULL;
}

static int home_gc (lua_State *L) {
  aigc_home *h = (aigc_home *)lua_touserdata(L, 1);
  lua_Debug ar;
  /* lua_close calls it with nothing below. Else a collection step inside
     another finalizer ran it (5.1: a big allocation in a finalizer at
     close runs the pending ones): the objects may be in use there, and
     are left as they were (what the sentinel cannot free then leaks). */
  if (lua_getstack(L, 1, &ar))
    return 0;
  while (h->live != NULL) {
    aigc_home_link *link = h->live;
    aigc_home_leave(link);
    link->free_c(L, link);
  }
  h->done = 1;
  return 0;
}

/* The state's sentinel, made when absent. */
static aigc_home *home_of (lua_State *L) {
  aigc_home *h;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &home_key) == LUA_TUSERDATA) {
    h = (aigc_home *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return h;
  }
  lua_pop(L, 1);
  h = (aigc_home *)lua_newuserdatauv(L, sizeof *h, 0);
  h->live = NULL;
  h->done = 0;
  lua_newtable(L);
  lua_pushcfunction(L, home_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &home_key);
  return h;
}

void aigc_home_open (lua_State *L) {
  home_of(L);   /* now: older than the game's objects, finalized after them */
}

void aigc_home_join (lua_State *L, aigc_home_link *link, aigc_home_free free_c) {
  aigc_home *h = home_of(L);
  link->free_c = free_c;
  if (h->done && !aigc_close_finalizes_late_objects())
    aigc_error_at_caller(L, "aigc: the Lua state is closing");
  link->next = h->live;
  if (h->live != NULL)
    h->live->prev = &link->next;
  h->live = link;
  link->prev = &h->live;
}
