/*
** error_report.c -- where the errors of callbacks go (the client's
** error_handler, the list step() returns, stderr) and the client's log
** lines (error.h). Apart from error.c, which makes and scrubs the errors,
** for its size.
*/
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "aigc.h"

/*
** Whether s is only an address as Lua shows one: "table: 0x55d0c...",
** "file (0x55d0c...)" (an open io file's own __tostring), "0x55d0c...": a
** word, separators, the address, an optional ")". Such a text tells the
** reader nothing and differs from run to run.
*/
static int only_address (const char *s, size_t len) {
  size_t i = 0, sep = strcspn(s, ":( "), digits;
  int hex = 0;
  if (sep < len) {   /* a word before the first separator */
    for (; i < sep; i++)
      if (!isalnum((unsigned char)s[i]) && strchr("_.*", s[i]) == NULL)
        return 0;
    while (i < len && strchr(":( ", s[i]) != NULL)
      i++;
  }
  if (len - i >= 2 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X'))
    i += 2, hex = 1;
  else if (i == 0)
    return 0;   /* bare hex digits: a word, not an address */
  for (digits = 0; i < len && isxdigit((unsigned char)s[i]); i++)
    digits++;
  if (i < len && s[i] == ')')
    i++;
  return digits >= (hex ? 1u : 8u) && i == len;   /* (Windows shows no "0x") */
}

/*
** Pushes (and returns) the text of an error value, never raising for it
** (only memory or a debug hook may): a string, number or boolean as it
** is; a value with __tostring as that gives it, unless it is only an
** address ("file (0x...)") or it fails ("(a table value whose __tostring
** failed)"); a table's string `message` field (raw: no __index runs);
** else what the value is: "a table error value without a message", as
** the Lua layer says it (lua/aigc/util.lua value_text), never
** "table: 0x...". For stderr and for a callback error's message.
*/
static const char *error_text (lua_State *L, int idx) {
  int t = lua_type(L, idx);
  idx = lua_absindex(L, idx);
  luaL_checkstack(L, 2, NULL);
  if (t == LUA_TSTRING || t == LUA_TNUMBER || t == LUA_TBOOLEAN)
    return aigc_tostring_safe(L, idx, NULL);
  if (luaL_getmetafield(L, idx, "__tostring")) {
    size_t len;
    const char *s;
    lua_pop(L, 1);
    s = aigc_tostring_safe(L, idx, &len);
    if (!only_address(s, len))
      return s;
    lua_pop(L, 1);
  }
  if (t == LUA_TTABLE) {
    lua_pushliteral(L, "message");
    lua_rawget(L, idx);   /* (raw: no __index runs here) */
    if (lua_type(L, -1) == LUA_TSTRING)
      return lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  return lua_pushfstring(L, "a %s error value without a message", luaL_typename(L, idx));
}

/*
** The error a callback raised (request.c: a stream callback, on_stream_end,
** an upload's reader), with aigc_pcall's traceback: see error.h. Here, beside
** error_text, which names a value raised as it is.
*/
void aigc_error_from_callback (lua_State *L) {
  size_t len;
  const char *full, *tb;
  if (lua_type(L, -1) != LUA_TSTRING) {
    /* A value raised as it is (a table, a userdata, a boolean: the
       handler adds no traceback to those): kept whole as err.value (the
       game's error({ reason = "npc_left" })), its text as the message,
       which never shows an address nor raises (error_text). */
    aigc_error_new(L, "callback", "");
    error_text(L, -2);
    lua_setfield(L, -2, "message");
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "value");
    lua_replace(L, -2);
    return;
  }
  full = aigc_tostring_safe(L, -1, &len);
  tb = strstr(full, "\nstack traceback:");
  aigc_error_new(L, "callback", "");
  lua_pushlstring(L, full, tb ? (size_t)(tb - full) : len);
  lua_setfield(L, -2, "message");
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "traceback");
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/*
** Writes the error at idx to stderr, one report, scrubbed of `secrets`
** (or NULL): the text of a value raised as it is comes from its own
** __tostring, run here, which the walk of the value cannot reach (a
** game's object whose text holds the key).
*/
static void write_error (lua_State *L, int idx, const char *why, const char *secrets) {
  size_t len;
  const char *s = error_text(L, idx);
  lua_tolstring(L, -1, &len);
  aigc_error_push_scrubbed(L, s, len, secrets);
  fprintf(stderr, "aigc: %s: %s\n", why, lua_tostring(L, -1));
  fflush(stderr);
  lua_pop(L, 2);
}

/*
** Scrubs the error at idx of `secrets`, unless it is a value a callback
** raised as it is (a table that is no aigc error, a userdata): that is the
** script's own object (a game's NPC), handed back unchanged as a stream
** callback's err.value is; the walk changed its fields in place. What aigc
** writes of it (write_error) is scrubbed.
*/
static void scrub_reported (lua_State *L, int idx, const char *secrets) {
  int own = lua_type(L, idx) == LUA_TUSERDATA;
  if (lua_type(L, idx) == LUA_TTABLE) {
    own = 1;
    if (lua_getmetatable(L, idx)) {
      luaL_getmetatable(L, AIGC_ERROR_MT);
      own = !lua_rawequal(L, -1, -2);
      lua_pop(L, 2);
    }
  }
  if (!own)
    aigc_error_scrub(L, idx, secrets);
}

/*
** Reported exactly once (error.h). What is still kept when the client is
** closed or collected goes to stderr (aigc_error_flush).
*/
void aigc_error_report (lua_State *L, int eidx, int erridx, const char *secrets) {
  lua_Integer n;
  erridx = lua_absindex(L, erridx);
  eidx = lua_absindex(L, eidx);
  scrub_reported(L, erridx, secrets);   /* no secret on stderr or in step()'s list */
  if (lua_getiuservalue(L, eidx, AIGC_EN_ERRHANDLER) == LUA_TFUNCTION) {
    lua_pushvalue(L, erridx);
    if (aigc_pcall(L, 1, 0) == LUA_OK)
      return;
    scrub_reported(L, lua_gettop(L), secrets);   /* (its own error may hold one too) */
    write_error(L, -1, "error in the client's error_handler", secrets);
    lua_pop(L, 1);
    write_error(L, erridx, "error in a callback, given to the error_handler that failed", secrets);
    return;
  }
  lua_pop(L, 1);
  if (lua_getiuservalue(L, eidx, AIGC_EN_ERRORS) != LUA_TTABLE) {   /* cannot be: kept a table */
    lua_pop(L, 1);
    write_error(L, erridx, "error in a callback", secrets);
    return;
  }
  n = (lua_Integer)lua_rawlen(L, -1);
  if (n >= AIGC_MAX_KEPT_ERRORS) {
    lua_pop(L, 1);
    write_error(L, erridx, "error in a callback (too many kept for step() already)", secrets);
    return;
  }
  lua_pushvalue(L, erridx);
  lua_rawseti(L, -2, n + 1);
  lua_pop(L, 1);
}

void aigc_error_flush (lua_State *L, int eidx, const char *secrets) {
  lua_Integer i, n;
  if (lua_getiuservalue(L, eidx, AIGC_EN_ERRORS) == LUA_TTABLE) {
    n = (lua_Integer)lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      write_error(L, -1, "error in a callback (no step() collected it before the client closed)", secrets);
      lua_pop(L, 1);
      lua_pushnil(L);
      lua_rawseti(L, -2, i);
    }
  }
  lua_pop(L, 1);
}

/* len, less an incomplete UTF-8 character at the end of s[0..len) (a
   cut one: the log function got invalid UTF-8, which JSON encoders and
   LOVE's print refuse). */
static size_t whole_chars (const char *s, size_t len) {
  size_t j = len, need;
  unsigned char c;
  while (j > 0 && ((unsigned char)s[j - 1] & 0xC0) == 0x80)
    j--;
  if (j == 0)
    return len;
  c = (unsigned char)s[j - 1];   /* the last character's first byte */
  need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
  return len - (j - 1) < need ? j - 1 : len;
}

void aigc_error_log (lua_State *L, int eidx, const char *secrets, const char *level,
                     const char *fmt, ...) {
  char msg[1024];
  size_t len;
  int n;
  va_list ap;
  eidx = lua_absindex(L, eidx);
  if (lua_getiuservalue(L, eidx, AIGC_EN_LOG) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    return;
  }
  va_start(ap, fmt);
  n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  len = strlen(msg);
  if (n >= (int)sizeof msg)
    len = whole_chars(msg, len);   /* (a line cut at 1 KiB: not inside a character) */
  lua_pushstring(L, level);
  aigc_error_push_scrubbed(L, msg, len, secrets);   /* no secret in a log line */
  aigc_error_escape_top(L);   /* nor a line of its own (error.c, "Text shown") */
  if (aigc_pcall(L, 2, 0) != LUA_OK) {
    aigc_error_report(L, eidx, -1, secrets);
    lua_pop(L, 1);
  }
}
