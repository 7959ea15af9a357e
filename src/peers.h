/*
** peers.h — the secrets blocks of every live client of a Lua state, so
** that each client's errors and log lines are scrubbed of them all.
**
** One server often serves several accounts (a shared proxy, a gateway, a
** local server for two keys) and may echo client B's key in an error of
** client A: scrubbing each error with its own client's secrets only left
** B's key readable there. So each engine lists a copy of its block (a Lua
** string; redact.h's layout, opaque here) in a weak-keyed table of the
** state's registry, gone when the engine is closed or collected; what scrubs (only
** errors, log lines and what engine:scrub is given: never a success's
** delivery) then also searches the blocks of the other engines. Per Lua
** state: a host's states in other threads share nothing.
*/
#ifndef AIGC_PEERS_H
#define AIGC_PEERS_H

#include <stddef.h>

#include "aigc.h"

/* Lists the block (block[0..len)) of the engine at eidx; nothing for a
   NULL block. */
void aigc_peers_add (lua_State *L, int eidx, const char *block, size_t len);
/* Unlists the engine at eidx (closed: its secrets stay its own errors'
   only). Allocates nothing, raises nothing. */
void aigc_peers_remove (lua_State *L, int eidx);
/* When some live engine's block differs from own[0..ownlen) (own NULL:
   none), pushes a list (a table 1..n) of those blocks, as Lua strings,
   and returns n; else pushes nothing and returns 0 (no allocation). */
int aigc_peers_push (lua_State *L, const char *own, size_t ownlen);

#endif
