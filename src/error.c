/*
** error.c — the error objects that failures return (`nil, err`).
**
** An error is a plain table with the "aigc.error" metatable, so scripts can
** read and compare its fields and `tostring(err)` (and so `assert(...)`)
** gives one readable line:
**
**   aigc: http error 429: Rate limit reached (code rate_limit_exceeded) [request req_7f3a]
**
** Fields: kind ("connect", "timeout", "http", "api", "stream", "parse",
** "canceled", "limit", "callback", and from the Lua layer "schema",
** "incomplete", "tool"), message, status, type, code, param, request_id,
** retry_after, retries, body, headers, partial, traceback.
**
** No secret may reach an error: messages and bodies built from server
** replies go through aigc_push_scrubbed, which blanks the API key if a
** server echoed it back.
*/
#include <string.h>

#include "aigc.h"

void aigc_error_new (lua_State *L, const char *kind, const char *message) {
  lua_createtable(L, 0, 8);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, message);
  lua_setfield(L, -2, "message");
  luaL_setmetatable(L, AIGC_ERROR_MT);
}

void aigc_error_setint (lua_State *L, const char *field, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, field);
}

void aigc_error_setstr (lua_State *L, const char *field, const char *s, size_t len) {
  lua_pushlstring(L, s, len);
  lua_setfield(L, -2, field);
}

static const char *find_bytes (const char *hay, size_t hlen,
                               const char *needle, size_t nlen) {
  size_t i;
  if (nlen == 0 || hlen < nlen)
    return NULL;
  for (i = 0; i + nlen <= hlen; i++) {
    const char *p = (const char *)memchr(hay + i, needle[0], hlen - nlen - i + 1);
    if (p == NULL)
      return NULL;
    if (memcmp(p, needle, nlen) == 0)
      return p;
    i = (size_t)(p - hay);
  }
  return NULL;
}

/*
** Pushes s[0..len) with every occurrence of `secret` replaced by
** "[redacted]". Short secrets (under 8 bytes) are not searched for: they
** would blank ordinary words, and no real API key is that short.
*/
void aigc_push_scrubbed (lua_State *L, const char *s, size_t len, const char *secret) {
  size_t slen = secret ? strlen(secret) : 0;
  const char *hit;
  luaL_Buffer b;
  if (slen < 8 || (hit = find_bytes(s, len, secret, slen)) == NULL) {
    lua_pushlstring(L, s, len);
    return;
  }
  luaL_buffinit(L, &b);
  do {
    luaL_addlstring(&b, s, (size_t)(hit - s));
    luaL_addstring(&b, "[redacted]");
    len -= (size_t)(hit - s) + slen;
    s = hit + slen;
  } while ((hit = find_bytes(s, len, secret, slen)) != NULL);
  luaL_addlstring(&b, s, len);
  luaL_pushresult(&b);
}

/*
** Pushes field `name` of the error at idx on one line (CR and LF become
** spaces) and returns 1, if it is a string or a number; else pushes
** nothing and returns 0. The copy is made in a buffer of its own, with the
** field's value anchored below it: a luaL_Buffer must not have values
** pushed above it between its operations (that corrupts it once it grows
** past LUAL_BUFFERSIZE, e.g. with a server's 2 kB error message).
*/
static int push_field (lua_State *L, int idx, const char *name) {
  int t = lua_getfield(L, idx, name);
  if (t == LUA_TSTRING || t == LUA_TNUMBER) {
    size_t len, i;
    const char *s = lua_tolstring(L, -1, &len);
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, len);
    for (i = 0; i < len; i++)
      p[i] = (s[i] == '\n' || s[i] == '\r') ? ' ' : s[i];
    luaL_pushresultsize(&b, len);
    lua_remove(L, -2);
    return 1;
  }
  lua_pop(L, 1);
  return 0;
}

/*
** __tostring: "aigc: <kind> error[ <status>]: <message>[ (code <code>)][ [request <id>]]".
** The message is cut at its first line end, CR or LF (a callback's
** traceback stays in err.traceback). Built as pieces on the stack, then
** one concat.
*/
static int error_tostring (lua_State *L) {
  int n = 1;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  luaL_checkstack(L, 16, "aigc error tostring");
  lua_pushliteral(L, "aigc: ");
  if (push_field(L, 1, "kind")) {
    lua_pushliteral(L, " error");
    n += 2;
  }
  else {
    lua_pushliteral(L, "error");
    n++;
  }
  if (push_field(L, 1, "status")) {
    lua_pushliteral(L, " ");
    lua_insert(L, -2);
    n += 2;
  }
  lua_pushliteral(L, ": ");
  n++;
  if (lua_getfield(L, 1, "message") == LUA_TSTRING) {
    size_t len, cut = 0;
    const char *msg = lua_tolstring(L, -1, &len);
    while (cut < len && msg[cut] != '\n' && msg[cut] != '\r')
      cut++;
    lua_pushlstring(L, msg, cut);
    lua_remove(L, -2);
  }
  else {
    lua_pop(L, 1);
    lua_pushliteral(L, "(no message)");
  }
  n++;
  if (push_field(L, 1, "code")) {
    lua_pushliteral(L, " (code ");
    lua_insert(L, -2);
    lua_pushliteral(L, ")");
    n += 3;
  }
  if (push_field(L, 1, "request_id")) {
    lua_pushliteral(L, " [request ");
    lua_insert(L, -2);
    lua_pushliteral(L, "]");
    n += 3;
  }
  lua_concat(L, n);
  return 1;
}

void aigc_error_open (lua_State *L) {
  luaL_newmetatable(L, AIGC_ERROR_MT);
  lua_pushcfunction(L, error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushstring(L, AIGC_ERROR_MT);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}
