/*
** slots.c — the engine's tables of requests (slots.h): a request's slot,
** its handle in the tables of handles, its core in the table of cores.
**
** THE RE-ENTRANCY RULE (aigc.h): hold allocates (a slot, a table's
** growth) and may run a finalizer; drop and unanchor make no Lua value
** (nil stores, a slot onto a stack with room for it), so they run no
** finalizer and may run anywhere, a __gc included. They may still raise
** where the Lua stack must grow for them (LuaJIT, under a host's memory
** cap): the finalizer's __gc does its C frees first.
*/
#include <stdlib.h>

#include "slots.h"

/*
** The request's three objects. What Lua holds (AIGC_REQUEST_MT, the
** handle) is a pointer and the user values (callbacks, the result). The C
** state lives in a second userdata, the core, with no metatable. The third
** (AIGC_REQUEST_CORE_MT, its finalizer) holds the same pointer and is the
** only one with a __gc; its user values are the core and the engine, and
** the handle holds it in its AIGC_RQ_CORE slot.
**
** A finalized object is kept for one more collection cycle with everything
** it references: were the __gc on the handle, every dropped request would
** keep its result (the reply's tables) alive for a cycle more, ~6k
** instructions per request in marking (bench/README, issue 17, lane
** transfer). The finalizer references only the core and the engine, so the
** handle dies with its user values in one cycle, and the finalizer's __gc
** then cancels and frees as before. The core's memory lives as long as
** anything can reach the handle (a finalizer that resurrects it reaches the
** core through the finalizer), so the handle's pointer never dangles.
**
** The engine also holds the core, in its AIGC_EN_CORES table under the
** core's own slot, from submit until the finalizer's __gc (or the loop
** finding the handle gone) gives that slot back. The engine's lists
** point into the core, and Lua does not always call a __gc: when it cannot
** (a memory error or a C stack overflow while calling it) it frees the
** object with nothing told. A core held only by its handle was then freed
** while still on the engine's lists, and the next unlink wrote into freed
** memory (spec/engine_unfinalized_spec.lua). Held by the engine, such a
** core stays until its request is off every list.
*/
/*
** {======================================================
** The engine's tables of requests
** =======================================================
*/

/*
** A request's key in the engine's tables (AIGC_EN_WEAK: every live one,
** AIGC_EN_STRONG: those kept alive) is a small integer, its slot, given
** back when it is dropped and given to the next request: the keys stay in
** 1..(most requests at once), in the tables' array parts. Keyed by the
** request's address, they were hash tables of K live keys churned at every
** request; Lua reuses no dead key's node, so once its free nodes ran out
** the table was rebuilt (every K keys rehashed), and with K just under a
** power of two that was every few requests: 500 tasks making blocking
** calls cost 260k instructions per request, 64 cost 223k.
**
** So each table's keys must stay dense: two pools of slots. A request's
** slot in the tables of handles is given back when nobody listens (its
** end delivered: drop), its core's slot in the table of cores only when
** its finalizer runs, which under a generational collector is the next
** major collection (the handle dies old). With one slot for both, the
** tables of handles held K live keys among K + (requests ended since the
** last major) and churned their hash parts as above: 3-4k instructions
** per request at 64 in flight, up to 91k at 1,024 (bench/README,
** 2026-12-06, "two pools of slots").
*/
static int take_table_slot (lua_State *L, aigc_slot_pool *pool) {
  if (pool->nfree > 0)
    return pool->free[--pool->nfree];
  if (pool->next == pool->cap) {   /* room for every slot ever given, back at once */
    int cap = pool->cap > 0 ? pool->cap * 2 : 64;
    int *p = cap > pool->cap ? (int *)realloc(pool->free, (size_t)cap * sizeof *p) : NULL;
    if (p == NULL)
      luaL_error(L, "not enough memory");
    pool->free = p;
    pool->cap = cap;
  }
  return ++pool->next;
}

/* (a closed engine takes no more requests, and its __gc frees the stacks) */
static void give_table_slot (aigc_roster *ro, int core, int slot) {
  aigc_slot_pool *pool;
  if (ro == NULL || ro->closed)
    return;
  pool = core ? &ro->cores : &ro->slots;
  pool->free[pool->nfree++] = slot;
}

/* (The stores may allocate, and a finalizer run: none can drop r meanwhile.
   At submit nothing can reach r yet; from add_waiter, r has waiters, so a
   cancel or close in a finalizer leaves its end to deliver, not dropped.) */
void aigc_request_hold (lua_State *L, int eidx, aigc_request *r, int ridx, int strong) {
  ridx = lua_absindex(L, ridx);
  eidx = lua_absindex(L, eidx);
  if (r->core_slot == 0) {
    r->core_slot = take_table_slot(L, &r->roster->cores);   /* (raises before anything changed) */
    lua_getiuservalue(L, eidx, AIGC_EN_CORES);
    lua_getiuservalue(L, ridx, AIGC_RQ_CORE);   /* its finalizer */
    lua_getiuservalue(L, -1, 1);                 /* the core */
    lua_rawseti(L, -3, r->core_slot);   /* (may grow the table and raise: unanchor clears a nil) */
    lua_pop(L, 2);
  }
  if (r->slot == 0)
    r->slot = take_table_slot(L, &r->roster->slots);
  lua_getiuservalue(L, eidx, AIGC_EN_WEAK);
  lua_pushvalue(L, ridx);
  lua_rawseti(L, -2, r->slot);
  lua_pop(L, 1);
  if (strong && !r->strong) {
    lua_getiuservalue(L, eidx, AIGC_EN_STRONG);
    lua_pushvalue(L, ridx);
    lua_rawseti(L, -2, r->slot);
    lua_pop(L, 1);
    r->strong = 1;
  }
}

/* Clears the entries of a slot in the engine's tables from `first` to
   `last` (no allocation: nil stores). */
static void clear_slot (lua_State *L, int eidx, int slot, int first, int last) {
  int t;
  for (t = first; t <= last; t++) {
    if (lua_getiuservalue(L, eidx, t) == LUA_TTABLE) {
      lua_pushnil(L);
      lua_rawseti(L, -2, slot);
    }
    lua_pop(L, 1);
  }
}

/* Nobody listens any more: out of the engine's tables of handles, its
   slot there given back (the next request takes it: those tables stay as
   dense as the requests in flight). The engine keeps its core, under the
   core's own slot, until unanchor. */
void aigc_request_drop (lua_State *L, int eidx, aigc_request *r) {
  if (r->slot != 0) {
    clear_slot(L, eidx, r->slot, AIGC_EN_STRONG, AIGC_EN_WEAK);
    give_table_slot(r->roster, 0, r->slot);
    r->slot = 0;
  }
  r->strong = 0;
}

void aigc_slot_release (lua_State *L, int eidx, int slot, int core_slot, aigc_roster *ro) {
  if (slot != 0) {
    clear_slot(L, eidx, slot, AIGC_EN_STRONG, AIGC_EN_WEAK);
    give_table_slot(ro, 0, slot);
  }
  if (core_slot != 0) {
    clear_slot(L, eidx, core_slot, AIGC_EN_CORES, AIGC_EN_CORES);
    give_table_slot(ro, 1, core_slot);
  }
}

void aigc_request_unanchor (lua_State *L, int eidx, aigc_request *r) {
  aigc_slot_release(L, eidx, r->slot, r->core_slot, r->roster);
  r->slot = r->core_slot = 0;
  r->strong = 0;
}

int aigc_request_push (lua_State *L, int eidx, aigc_request *r) {
  if (r->slot == 0)
    return 0;
  lua_getiuservalue(L, eidx, AIGC_EN_WEAK);
  if (lua_rawgeti(L, -1, r->slot) == LUA_TUSERDATA) {
    lua_remove(L, -2);
    return 1;
  }
  lua_pop(L, 2);
  return 0;
}

/* }====================================================== */
