/*
** peers.c — the secrets blocks of every live client of a Lua state
** (peers.h).
*/
#include <string.h>

#include "peers.h"

static const char peers_key = 'p';

void aigc_peers_add (lua_State *L, int eidx, const char *block, size_t len) {
  if (block == NULL)
    return;
  eidx = lua_absindex(L, eidx);
  lua_pushlstring(L, block, len);   /* copied before any allocation below */
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &peers_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &peers_key);
  }
  lua_pushvalue(L, eidx);
  lua_pushvalue(L, -3);
  lua_rawset(L, -3);
  lua_pop(L, 2);
}

void aigc_peers_remove (lua_State *L, int eidx) {
  eidx = lua_absindex(L, eidx);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &peers_key) == LUA_TTABLE) {
    lua_pushvalue(L, eidx);
    if (lua_rawget(L, -2) != LUA_TNIL) {   /* (only an existing key: no allocation) */
      lua_pushvalue(L, eidx);
      lua_pushnil(L);
      lua_rawset(L, -4);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* Whether the value on top is a block other than own[0..ownlen). */
static int other_block (lua_State *L, const char *own, size_t ownlen) {
  size_t len;
  const char *s;
  if (lua_type(L, -1) != LUA_TSTRING)
    return 0;
  s = lua_tolstring(L, -1, &len);
  return own == NULL || len != ownlen || memcmp(s, own, len) != 0;
}

/*
** The table is counted first, then the list made at its full size, then
** filled by a second traversal that allocates nothing (rawseti within the
** array part made): no finalizer can run during either traversal (a
** client made by one would add a key to the table being traversed). One
** listed meanwhile, past the count, is left out of this scrub.
*/
int aigc_peers_push (lua_State *L, const char *own, size_t ownlen) {
  int n = 0, i = 0, t;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &peers_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  t = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    n += other_block(L, own, ownlen);
    lua_pop(L, 1);
  }
  if (n == 0) {
    lua_pop(L, 1);
    return 0;
  }
  lua_createtable(L, n, 0);   /* (may run finalizers: own is the caller's to keep valid) */
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    if (i < n && other_block(L, own, ownlen))
      lua_rawseti(L, t + 1, ++i);
    else
      lua_pop(L, 1);
  }
  lua_remove(L, t);
  if (i == 0)
    lua_pop(L, 1);
  return i;
}
