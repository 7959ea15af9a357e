/*
** error.c — the error objects that failures return (`nil, err`), and the
** redaction of secrets from them and from log lines.
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
** retry_after, retries, retryable, body, headers, partial, traceback.
**
** Secrets are searched for and redacted in redact.c; here, the walk that
** scrubs every string reachable from an error (aigc_error_scrub).
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "headers.h"
#include "peers.h"
#include "utf8.h"

#define TOSTRING_MESSAGE_MAX 400     /* bytes of err.message in tostring(err) */
#define TOSTRING_FIELD_MAX 120       /* bytes of code, request id... there */

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

/*
** Pushes a "limit" error for a JSON document past the decoding limits:
** `what` names the document ("the response"), `detail` is what aigc_json_parse or
** the accumulator said ("more than N values"); the message names the
** option that raises the limit.
*/
void aigc_error_json_limit (lua_State *L, const char *what, const char *detail) {
  int containers = strstr(detail, "arrays") != NULL;
  aigc_error_new(L, "limit", "");
  if (strstr(detail, "hash flood") != NULL || strstr(detail, " members") != NULL)   /* (no option lifts them) */
    lua_pushfstring(L, "%s holds %s", what, detail);
  else
    lua_pushfstring(L, "%s holds %s (the limit is max_json_%s)", what, detail,
                    containers ? "containers" : "values");
  lua_setfield(L, -2, "message");
}


/*
** {======================================================
** Text shown
** =======================================================
*/

/*
** Server text reaches err.message, tostring(err) and log lines, which
** scripts print on terminals and write to log files: there, a CR or LF
** would forge a line ("\r\nFAKE LOG LINE") and an ESC drive the terminal
** ("\27[2J" clears it). So in those three the C0 controls but tab, and
** DEL, are shown as Lua writes them in a string: \r, \n, \27 (\027 before
** a digit), \127. The data fields (err.body, err.headers, err.partial)
** keep the bytes the server sent.
*/
static int is_control (unsigned char c) {
  return (c < 0x20 && c != '\t') || c == 0x7F;
}

static int has_control (const char *s, size_t len) {
  size_t i;
  for (i = 0; i < len; i++)
    if (is_control((unsigned char)s[i]))
      return 1;
  return 0;
}

/* Adds s[0..len) to b, its controls escaped. */
static void add_text (luaL_Buffer *b, const char *s, size_t len) {
  size_t i;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (!is_control(c))
      luaL_addchar(b, (char)c);
    else if (c == '\n' || c == '\r')
      luaL_addstring(b, c == '\n' ? "\\n" : "\\r");
    else {
      int digit = i + 1 < len && s[i + 1] >= '0' && s[i + 1] <= '9';
      snprintf(esc, sizeof esc, digit ? "\\%03u" : "\\%u", (unsigned)c);
      luaL_addstring(b, esc);
    }
  }
}

/* Pushes s[0..len) with its controls escaped, then `more` (or NULL). */
static void push_text (lua_State *L, const char *s, size_t len, const char *more) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  add_text(&b, s, len);
  if (more != NULL)
    luaL_addstring(&b, more);
  luaL_pushresult(&b);
}

/* Replaces the string on top by its form with controls escaped, if needed. */
void aigc_error_escape_top (lua_State *L) {
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  if (has_control(s, len)) {
    push_text(L, s, len, NULL);
    lua_remove(L, -2);
  }
}

/* Escapes the controls of err.message, idx being an error object. */
static void escape_message (lua_State *L, int idx) {
  int is_error;
  if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx))
    return;
  luaL_getmetatable(L, AIGC_ERROR_MT);
  is_error = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  if (!is_error || lua_getfield(L, idx, "message") != LUA_TSTRING) {
    if (is_error)
      lua_pop(L, 1);
    return;
  }
  aigc_error_escape_top(L);
  lua_setfield(L, idx, "message");
}

/* }====================================================== */


/*
** {======================================================
** Scrubbing an error (the search itself: redact.c)
** =======================================================
*/

/*
** The walk behind aigc_error_scrub. The value at idx, when a string, is
** replaced; a table is changed in place: every string value and key in it
** and in every table reachable from it (values and keys; not metatables).
** Iterative, each table once (a set of those seen), so depth and cycles
** cost nothing more. The secrets are the string at sidx.
**
** Re-entrancy: the tables, the strings and the secrets are all anchored on
** the stack, and a value is changed only by assigning an existing field
** (allowed during a traversal); keys are renamed after their table's
** traversal. A finalizer that changes a table being walked (only a table
** a script built can be reached by one) may make the walk miss or repeat
** entries of it, or raise "invalid key to 'next'", never crash.
*/
typedef struct scrub_walk_state {
  int sidx;                     /* the secrets, a string on the stack */
  const char *secrets;          /* its bytes (anchored there) */
  int seen, work, renames;      /* tables on the stack: those met, those to
                                   walk (a queue), keys to rename */
  lua_Integer nwork;
} scrub_walk_state;

/* One side (key at t + 1 or value at t + 2) of an entry of the table at t. */
static void scrub_side (lua_State *L, scrub_walk_state *W, int t, int side, lua_Integer *nren) {
  int type = lua_type(L, side);
  if (type == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, side, &len);
    if (!aigc_secrets_found(s, len, W->secrets))
      return;
    if (side == t + 2) {        /* a value: assign the existing field */
      lua_pushvalue(L, t + 1);
      lua_pushvalue(L, W->sidx);
      lua_pushvalue(L, side);
      aigc_secrets_scrub_top(L);
      lua_rawset(L, t);
    }
    else {                      /* a key: renamed after the traversal */
      lua_pushvalue(L, side);
      lua_rawseti(L, W->renames, ++*nren);
    }
  }
  else if (type == LUA_TTABLE) {
    lua_pushvalue(L, side);
    if (lua_rawget(L, W->seen) == LUA_TNIL) {
      lua_pushvalue(L, side);
      lua_pushboolean(L, 1);
      lua_rawset(L, W->seen);
      lua_pushvalue(L, side);
      lua_rawseti(L, W->work, ++W->nwork);
    }
    lua_pop(L, 1);
  }
}

/* Scrubs the entries of the table at t, then renames its keys. */
static void scrub_table (lua_State *L, scrub_walk_state *W, int t) {
  lua_Integer nren = 0, k;
  aigc_headers_materialize(L, t);   /* a result's headers, made on read: made now */
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {   /* key at t + 1, value at t + 2 */
    scrub_side(L, W, t, t + 2, &nren);
    scrub_side(L, W, t, t + 1, &nren);
    lua_settop(L, t + 1);
  }
  for (k = 1; k <= nren; k++) {   /* t[scrubbed key] = t[key]; t[key] = nil */
    lua_rawgeti(L, W->renames, k);
    lua_pushvalue(L, W->sidx);
    lua_pushvalue(L, -2);
    aigc_secrets_scrub_top(L);                   /* key, new key */
    if (lua_rawequal(L, -1, -2)) {  /* (found by a search that could not allocate) */
      lua_pop(L, 2);
      continue;
    }
    lua_pushvalue(L, -2);
    lua_rawget(L, t);               /* key, new key, value */
    lua_rawset(L, t);
    lua_pushnil(L);
    lua_rawset(L, t);
  }
}

static void scrub_walk (lua_State *L, int idx, int sidx) {
  scrub_walk_state W;
  lua_Integer head = 0;
  W.sidx = sidx;
  W.secrets = lua_tostring(L, sidx);
  W.nwork = 0;
  luaL_checkstack(L, 24, "aigc scrub");
  if (lua_type(L, idx) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (aigc_secrets_found(s, len, W.secrets)) {
      lua_pushvalue(L, sidx);
      lua_pushvalue(L, idx);
      aigc_secrets_scrub_top(L);
      lua_replace(L, idx);
    }
    return;
  }
  if (lua_type(L, idx) != LUA_TTABLE)
    return;
  lua_newtable(L);
  W.seen = lua_gettop(L);
  lua_newtable(L);
  W.work = lua_gettop(L);
  lua_newtable(L);
  W.renames = lua_gettop(L);
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, W.seen);
  if (lua_getmetatable(L, idx)) {
    luaL_getmetatable(L, AIGC_ERROR_MT);
    lua_pushliteral(L, "value");
    lua_rawget(L, idx);
    if (lua_rawequal(L, -3, -2) && lua_istable(L, -1)) {
      /* An error's `value` is what a callback raised, the script's own
         object (a game's NPC, and all it reaches): not walked nor changed. */
      lua_pushboolean(L, 1);
      lua_rawset(L, W.seen);
    }
  }
  lua_settop(L, W.renames);
  lua_pushvalue(L, idx);
  lua_rawseti(L, W.work, ++W.nwork);
  while (head < W.nwork) {
    int t;
    lua_rawgeti(L, W.work, ++head);
    t = lua_gettop(L);
    scrub_table(L, &W, t);
    lua_settop(L, t - 1);
    lua_pushnil(L);                   /* let the walked table go */
    lua_rawseti(L, W.work, head);
  }
  lua_settop(L, W.seen - 1);
}

void aigc_error_scrub (lua_State *L, int idx, const char *secrets) {
  int i, n;
  idx = lua_absindex(L, idx);
  if (secrets != NULL) {
    lua_pushlstring(L, secrets, aigc_secrets_len(secrets));
    scrub_walk(L, idx, lua_gettop(L));
    lua_pop(L, 1);
  }
  /* and of the state's other live clients' secrets (peers.h) */
  n = aigc_peers_push(L, secrets, secrets != NULL ? aigc_secrets_len(secrets) : 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    scrub_walk(L, idx, lua_gettop(L));
    lua_pop(L, 1);
  }
  if (n > 0)
    lua_pop(L, 1);
  escape_message(L, idx);   /* an error's message is text (see "Text shown") */
}

/* }====================================================== */


/*
** {======================================================
** tostring(err)
** =======================================================
*/

/*
** Pushes field `name` of the error at idx as text (controls escaped, see
** "Text shown"), at most `max` bytes of it and then "…", and returns 1, if
** it is a string or a number; else pushes nothing and returns 0. The copy is
** made in a buffer of its own, with the field's value anchored below it:
** a luaL_Buffer must not have values pushed above it between its
** operations (that corrupts it once it grows past LUAL_BUFFERSIZE, e.g.
** with a server's 2 kB error message).
*/
static int push_field (lua_State *L, int idx, const char *name, size_t max) {
  int t = lua_getfield(L, idx, name);
  if (t == LUA_TSTRING || t == LUA_TNUMBER) {
    size_t len, n;
    const char *s = lua_tolstring(L, -1, &len);
    n = aigc_utf8_cut(s, len, max);
    push_text(L, s, n, n < len ? "\xE2\x80\xA6" : NULL);   /* … */
    lua_remove(L, -2);
    return 1;
  }
  lua_pop(L, 1);
  return 0;
}

/*
** __tostring: "aigc: <kind> error[ <status>]: <message>[ (code <code>)][ [request <id>]]".
** The message is cut at its first line end, CR or LF (a callback's
** traceback stays in err.traceback), and at TOSTRING_MESSAGE_MAX bytes
** (then "…"; err.message keeps it all); the other fields at
** TOSTRING_FIELD_MAX: a server cannot make the line long; each piece has
** its controls escaped: nor can it end the line or drive a terminal. Built as
** pieces on the stack, then one concat.
*/
static int error_tostring (lua_State *L) {
  int n = 1;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  luaL_checkstack(L, 16, "aigc error tostring");
  lua_pushliteral(L, "aigc: ");
  if (push_field(L, 1, "kind", TOSTRING_FIELD_MAX)) {
    lua_pushliteral(L, " error");
    n += 2;
  }
  else {
    lua_pushliteral(L, "error");
    n++;
  }
  if (push_field(L, 1, "status", TOSTRING_FIELD_MAX)) {
    lua_pushliteral(L, " ");
    lua_insert(L, -2);
    n += 2;
  }
  lua_pushliteral(L, ": ");
  n++;
  if (lua_getfield(L, 1, "message") == LUA_TSTRING) {
    size_t len, cut = 0, keep;
    const char *msg = lua_tolstring(L, -1, &len);
    /* The first line: up to a line end, or to one shown as "\n" / "\r"
       (a server's message has its controls escaped when the error is
       made: see "Text shown"). */
    while (cut < len && msg[cut] != '\n' && msg[cut] != '\r'
           && !(msg[cut] == '\\' && cut + 1 < len && (msg[cut + 1] == 'n' || msg[cut + 1] == 'r')))
      cut++;
    keep = aigc_utf8_cut(msg, cut, TOSTRING_MESSAGE_MAX);
    push_text(L, msg, keep, keep < cut ? "\xE2\x80\xA6" : NULL);   /* … */
    lua_remove(L, -2);
  }
  else {
    lua_pop(L, 1);
    lua_pushliteral(L, "(no message)");
  }
  n++;
  if (push_field(L, 1, "code", TOSTRING_FIELD_MAX)) {
    lua_pushliteral(L, " (code ");
    lua_insert(L, -2);
    lua_pushliteral(L, ")");
    n += 3;
  }
  if (push_field(L, 1, "request_id", TOSTRING_FIELD_MAX)) {
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

/* }====================================================== */
