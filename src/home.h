/*
** home.h — the state's sentinel: the list of a lua_State's objects of
** aigc that hold C memory or a descriptor (clients, vector indexes,
** locks), and what frees them when lua_close gives them no __gc.
**
** lua_close runs the finalizers of every object then marked for one,
** newest first; an object made by one of those finalizers gets no __gc of
** its own (5.4: the state is closing; 5.1-5.3: the objects to finalize were
** already taken), and what it held in C leaked with each closed state. The
** sentinel is a userdata made when aigc.core loads, anchored in the
** registry: its __gc runs after those of every object made after aigc was
** loaded, and frees the C state of the objects still in its table.
**
** After it has run, on 5.1-5.4 no C of aigc runs again in that state: an
** object made then (by the finalizer of an object older than aigc's
** loading) could never be freed, so making one raises "aigc: the Lua state
** is closing". LuaJIT's lua_close finalizes in rounds: such an object gets
** its own __gc in the next one, and is made.
*/
#ifndef AIGC_HOME_H
#define AIGC_HOME_H

#include "aigc.h"

/*
** A kind of object the sentinel frees: one static instance per module
** (engine.c, media.c, lockfile.c). `free_c` gets the object's userdata
** block; it frees what the object holds in C, touching no stack slot,
** running no Lua and raising nothing, and is idempotent: the sentinel calls
** it on every object of the state still in memory, those whose own __gc
** has already run too.
*/
typedef struct aigc_home_kind {
  void (*free_c) (lua_State *L, void *object);
} aigc_home_kind;

/* Makes the state's sentinel, once per state (when aigc.core loads). */
void aigc_home_open (lua_State *L);

/*
** Puts the userdata at idx, being made, in its state's table of objects,
** with its kind; raises "aigc: the Lua state is closing" instead when
** nothing could free it (above). It may raise (a memory error too): call it
** once the userdata is made, closed, with its metatable (its __gc then
** frees it), and before it acquires anything.
**
** A weak-keyed table, not a C list of pointers into the objects: Lua does
** not always call a __gc (a memory error or a C stack overflow while it
** calls it; a debug.setmetatable that took it away) and then frees the
** object with nothing told. A list kept the freed object's pointer, and the
** next object's unlink wrote into freed memory (CI's host OOM spec on Lua
** 5.1: "malloc(): invalid next size"; spec/engine_unfinalized_spec.lua). A
** weak key goes with its object, so no object leaves the table by hand.
*/
void aigc_home_join (lua_State *L, int idx, const aigc_home_kind *kind);

#endif
