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
** loaded, and frees the C state of the objects still on its list.
**
** After it has run, on 5.1-5.4 no C of aigc runs again in that state: an
** object made then (by the finalizer of an object older than aigc's
** loading) could never be freed, so making one raises "aigc: the Lua state
** is closing". LuaJIT's lua_close finalizes in rounds: such an object gets
** its own __gc in the next one, and is made.
*/
#ifndef AIGC_HOME_H
#define AIGC_HOME_H

#include <stddef.h>

#include "aigc.h"

typedef struct aigc_home_link aigc_home_link;

/* Frees what the object of `link` holds in C, touching no stack slot and
   raising nothing (the sentinel's __gc calls it, the link already off the
   list); idempotent. */
typedef void (*aigc_home_free) (lua_State *L, aigc_home_link *link);

struct aigc_home_link {
  aigc_home_link *next, **prev;   /* prev NULL: on no list */
  aigc_home_free free_c;
};

/* The object that holds `link` as its `member`. */
#define AIGC_HOME_OWNER(link, type, member) \
  ((type *)(void *)((char *)(link) - offsetof(type, member)))

/* Makes the state's sentinel, once per state (when aigc.core loads). */
void aigc_home_open (lua_State *L);

/*
** Puts an object being made on its state's list, with the function that
** frees its C state; raises "aigc: the Lua state is closing" instead when
** nothing could free it (above). Allocates nothing once the sentinel is
** made: call it right after the object's userdata is made, closed, and
** before it acquires anything.
*/
void aigc_home_join (lua_State *L, aigc_home_link *link, aigc_home_free free_c);

/* Takes it off its list (its own __gc, or close()); idempotent. */
void aigc_home_leave (aigc_home_link *link);

#endif
