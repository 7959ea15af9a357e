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

/* Adds field `name` of the error at idx, if it is a string or number. */
static int add_field (lua_State *L, luaL_Buffer *b, int idx, const char *name,
                      const char *before, const char *after) {
  int t = lua_getfield(L, idx, name);
  if (t == LUA_TSTRING || t == LUA_TNUMBER) {
    size_t len, i;
    const char *s = lua_tolstring(L, -1, &len);
    luaL_addstring(b, before);
    for (i = 0; i < len; i++)   /* one line: newlines become spaces */
      luaL_addchar(b, (s[i] == '\n' || s[i] == '\r') ? ' ' : s[i]);
    luaL_addstring(b, after);
    lua_pop(L, 1);
    return 1;
  }
  lua_pop(L, 1);
  return 0;
}

/*
** __tostring: "aigc: <kind> error[ <status>]: <message>[ (code <code>)][ [request <id>]]".
** The message is cut at its first line (a callback's traceback stays in
** err.traceback).
*/
static int error_tostring (lua_State *L) {
  luaL_Buffer b;
  size_t len;
  const char *msg;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "aigc: ");
  if (!add_field(L, &b, 1, "kind", "", " error"))
    luaL_addstring(&b, "error");
  add_field(L, &b, 1, "status", " ", "");
  luaL_addstring(&b, ": ");
  if (lua_getfield(L, 1, "message") == LUA_TSTRING) {
    const char *nl;
    msg = lua_tolstring(L, -1, &len);
    nl = (const char *)memchr(msg, '\n', len);
    luaL_addlstring(&b, msg, nl ? (size_t)(nl - msg) : len);
  }
  else
    luaL_addstring(&b, "(no message)");
  lua_pop(L, 1);
  add_field(L, &b, 1, "code", " (code ", ")");
  add_field(L, &b, 1, "request_id", " [request ", "]");
  luaL_pushresult(&b);
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
