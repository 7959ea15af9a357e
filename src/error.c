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
** retry_after, retries, body, headers, partial, traceback.
**
** No secret may reach an error or a log line. A server may echo the API key
** anywhere: in an error message, deep inside a JSON error body, in a
** header, in the request id, in a stream's error event, in a 200's text that
** a callback then raises. So redaction is not done field by field but on the
** finished object: aigc_error_scrub walks every string reachable from it
** (keys too, at any depth, cycles and all) and replaces each occurrence of
** each of the engine's secrets by "[redacted]"; the engine's log function
** only ever sees scrubbed lines (aigc_error_log). The Lua layer scrubs the
** errors it builds itself with engine:scrub(err).
**
** The secrets of an engine (the API key, an Azure key, an Azure AD token,
** the credential of a custom Authorization or api-key header) are kept as
** one block "s1\0s2\0...\0\0" (aigc_secrets_from_config), for the life of
** the engine userdata: close() leaves them, __gc zeroes and frees them. So a
** pointer to them stays valid while the engine is on the stack, whatever a
** finalizer run by an allocation does (the re-entrancy rule: close() may
** run at any allocation).
**
** What counts as an occurrence: the secret anywhere in a string, repeated,
** at its start or end; and a string that ends with the first 8 bytes or
** more of a secret (a secret cut by a truncation: a log line's 1 KiB, a body
** kept to 64 KiB). Secrets shorter than 8 bytes are not searched for: they
** would blank ordinary words, and no real credential is that short. A
** secret split across two values, or transformed (escaped, encoded), is
** not found.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "headers.h"

#define SECRET_MIN 8                 /* shorter secrets are not searched */
#define AIGC_MAX_SECRETS 16          /* more in one block are not searched */
#define REDACTED "[redacted]"
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
  lua_pushfstring(L, "%s holds %s (the limit is max_json_%s)", what, detail,
                  containers ? "containers" : "values");
  lua_setfield(L, -2, "message");
}


/*
** {======================================================
** Secrets
** =======================================================
*/

/* Bytes of a secrets block, both final NULs included. */
static size_t block_len (const char *secrets) {
  const char *p = secrets;
  while (*p != '\0')
    p += strlen(p) + 1;
  return (size_t)(p - secrets) + 1;
}

/* Case-insensitive equality of s[0..n) with the lower-case ASCII word w. */
static int word_is (const char *s, size_t n, const char *w) {
  size_t i;
  if (strlen(w) != n)
    return 0;
  for (i = 0; i < n; i++) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z')
      c = (char)(c + 32);
    if (c != w[i])
      return 0;
  }
  return 1;
}

/*
** Adds to the list at `list` (a Lua table, n entries so far) the credential
** of the header line at the top of the stack, if it carries one:
** Authorization, api-key or x-api-key; of "Bearer X" (any scheme), X.
** Pops the line.
*/
static void add_header_secret (lua_State *L, int list, lua_Integer *n) {
  size_t len;
  const char *line = lua_tolstring(L, -1, &len), *colon, *v, *end;
  if (line == NULL || lua_type(L, -1) != LUA_TSTRING ||
      (colon = (const char *)memchr(line, ':', len)) == NULL) {
    lua_pop(L, 1);
    return;
  }
  end = line + len;
  if (word_is(line, (size_t)(colon - line), "authorization") ||
      word_is(line, (size_t)(colon - line), "api-key") ||
      word_is(line, (size_t)(colon - line), "x-api-key")) {
    const char *p;
    v = colon + 1;
    for (p = v; p < end; p++)   /* the last word: "Bearer X" -> X */
      if (*p == ' ' || *p == '\t')
        v = p + 1;
    if (v < end) {
      lua_pushlstring(L, v, (size_t)(end - v));
      lua_rawseti(L, list, ++*n);
    }
  }
  lua_pop(L, 1);
}

/*
** The secrets of the engine config at idx, as a malloc'ed block
** "s1\0s2\0...\0\0", or NULL when there are none: config.secrets (a list of
** strings; holes allowed), config.secret (one string), and the credential
** of every Authorization, api-key or x-api-key line of config.headers and
** config.stream_headers. Empty strings, strings with a NUL and repeats are
** left out. Raises on a value of the wrong type, before allocating. Free
** the block with aigc_secrets_free.
*/
char *aigc_secrets_from_config (lua_State *L, int idx) {
  int list, f;
  lua_Integer n = 0, i;
  size_t total = 1, len, at = 0;
  char *out;
  static const char *const header_fields[] = {"headers", "stream_headers"};
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  list = lua_gettop(L);
  if (lua_getfield(L, idx, "secret") == LUA_TSTRING)
    lua_rawseti(L, list, ++n);
  else if (!lua_isnil(L, -1))
    aigc_argerror(L, 1, "engine", "config.secret: a string expected, got %s", luaL_typename(L, -1));
  else
    lua_pop(L, 1);
  if (lua_getfield(L, idx, "secrets") == LUA_TTABLE) {
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
      if (lua_type(L, -1) != LUA_TSTRING)
        aigc_argerror(L, 1, "engine", "config.secrets: a list of strings expected, found a %s",
                      luaL_typename(L, -1));
      lua_rawseti(L, list, ++n);
    }
  }
  else if (!lua_isnil(L, -1))
    aigc_argerror(L, 1, "engine", "config.secrets: a list of strings expected, got %s",
                  luaL_typename(L, -1));
  lua_pop(L, 1);
  for (f = 0; f < 2; f++) {
    if (lua_getfield(L, idx, header_fields[f]) == LUA_TTABLE) {
      int t = lua_gettop(L);
      lua_Integer k, nh = (lua_Integer)lua_rawlen(L, t);
      for (k = 1; k <= nh; k++) {
        lua_rawgeti(L, t, k);
        add_header_secret(L, list, &n);
      }
    }
    lua_pop(L, 1);
  }
  /* Sizes first, then one allocation and no Lua call until it is filled
     (lua_rawgeti of a string allocates nothing). */
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    lua_tolstring(L, -1, &len);
    total += len + 1;
    lua_pop(L, 1);
  }
  if (n == 0 || (out = (char *)malloc(total)) == NULL) {
    lua_settop(L, list - 1);
    if (n > 0)
      luaL_error(L, "not enough memory");
    return NULL;
  }
  for (i = 1; i <= n; i++) {
    const char *s, *p;
    lua_rawgeti(L, list, i);
    s = lua_tolstring(L, -1, &len);
    for (p = out; p < out + at; p += strlen(p) + 1)   /* a repeat? */
      if (strlen(p) == len && memcmp(p, s, len) == 0)
        break;
    if (len > 0 && strlen(s) == len && p == out + at) {
      memcpy(out + at, s, len + 1);
      at += len + 1;
    }
    lua_pop(L, 1);
  }
  out[at] = '\0';
  lua_settop(L, list - 1);
  if (at == 0) {
    free(out);
    return NULL;
  }
  return out;
}

/* Zeroes and frees a block made by aigc_secrets_from_config (or NULL). */
void aigc_secrets_free (char *secrets) {
  if (secrets != NULL) {
    memset(secrets, 0, block_len(secrets));
    free(secrets);
  }
}

/* One secret of a block, and where it next occurs in the string scanned. */
typedef struct secret_hit {
  const char *p;
  size_t n;
  const char *next;   /* next occurrence at or after the scan position */
} secret_hit;

/*
** The first occurrence of p[0..n) in s[0..len), or NULL: memchr on its
** first byte, then a compare. Linear for credentials, which do not repeat
** their own beginning; pure C, allocates nothing.
*/
static const char *find_one (const char *s, size_t len, const char *p, size_t n) {
  size_t i;
  for (i = 0; i + n <= len; i++) {
    const char *q = (const char *)memchr(s + i, p[0], len - n - i + 1);
    if (q == NULL)
      return NULL;
    if (memcmp(q, p, n) == 0)
      return q;
    i = (size_t)(q - s);
  }
  return NULL;
}

/* The length of the longest end of s[0..len) that is a start of p[0..n),
   SECRET_MIN bytes or more and shorter than p (a secret cut short), or 0. */
static size_t cut_tail (const char *s, size_t len, const char *p, size_t n) {
  size_t k = (n - 1 < len) ? n - 1 : len;
  for (; k >= SECRET_MIN; k--)
    if (s[len - k] == p[0] && memcmp(s + len - k, p, k) == 0)
      return k;
  return 0;
}

/* Loads the secrets of the block that are long enough to be searched for
   (at most AIGC_MAX_SECRETS); returns how many. */
static int load_secrets (const char *secrets, secret_hit *v) {
  const char *p;
  int k = 0;
  if (secrets == NULL)
    return 0;
  for (p = secrets; *p != '\0' && k < AIGC_MAX_SECRETS; p += strlen(p) + 1) {
    size_t n = strlen(p);
    if (n >= SECRET_MIN) {
      v[k].p = p;
      v[k].n = n;
      v[k].next = NULL;
      k++;
    }
  }
  return k;
}

/* Whether s[0..len) holds a secret of the block, whole or cut at its end.
   Pure C: allocates nothing. */
static int has_secret (const char *s, size_t len, const char *secrets) {
  secret_hit v[AIGC_MAX_SECRETS];
  int k = load_secrets(secrets, v), j;
  if (len < SECRET_MIN)
    return 0;
  for (j = 0; j < k; j++)
    if (find_one(s, len, v[j].p, v[j].n) != NULL || cut_tail(s, len, v[j].p, v[j].n) > 0)
      return 1;
  return 0;
}

/*
** Replaces the string at the top of the stack by its scrubbed form, the
** secrets being the string just below it (both anchored there, so nothing
** a finalizer does can move them). Pops the secrets. Each secret's next
** occurrence is remembered and searched again only once the scan has
** passed it: linear in the string however many hits.
*/
static void scrub_top (lua_State *L) {
  secret_hit v[AIGC_MAX_SECRETS];
  size_t len, tail = 0;
  const char *s = lua_tolstring(L, -1, &len), *end = s + len;
  int k = load_secrets(lua_tostring(L, -2), v), j;
  luaL_Buffer b;
  for (j = 0; j < k; j++)
    v[j].next = find_one(s, len, v[j].p, v[j].n);
  luaL_buffinit(L, &b);
  for (;;) {
    int best = -1;
    for (j = 0; j < k; j++)
      if (v[j].next != NULL && (best < 0 || v[j].next < v[best].next))
        best = j;
    if (best < 0)
      break;
    luaL_addlstring(&b, s, (size_t)(v[best].next - s));
    luaL_addstring(&b, REDACTED);
    s = v[best].next + v[best].n;
    for (j = 0; j < k; j++)
      if (v[j].next != NULL && v[j].next < s)
        v[j].next = find_one(s, (size_t)(end - s), v[j].p, v[j].n);
  }
  for (j = 0; j < k; j++) {
    size_t t = cut_tail(s, (size_t)(end - s), v[j].p, v[j].n);
    if (t > tail)
      tail = t;
  }
  luaL_addlstring(&b, s, (size_t)(end - s) - tail);
  if (tail > 0)
    luaL_addstring(&b, REDACTED);
  luaL_pushresult(&b);
  lua_replace(L, -3);   /* over the secrets */
  lua_pop(L, 1);        /* the original */
}

/*
** Pushes s[0..len) with every secret of the block replaced by
** "[redacted]" (see the top of this file). `secrets` is an engine's block
** (valid while the engine userdata lives) or NULL. s is copied into Lua
** first, so the caller's memory is not read after an allocation.
*/
void aigc_error_push_scrubbed (lua_State *L, const char *s, size_t len, const char *secrets) {
  lua_pushlstring(L, s, len);   /* copied before any collection step */
  s = lua_tolstring(L, -1, &len);
  if (!has_secret(s, len, secrets))
    return;
  lua_pushlstring(L, secrets, block_len(secrets));
  lua_insert(L, -2);
  scrub_top(L);
}

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
    if (!has_secret(s, len, W->secrets))
      return;
    if (side == t + 2) {        /* a value: assign the existing field */
      lua_pushvalue(L, t + 1);
      lua_pushvalue(L, W->sidx);
      lua_pushvalue(L, side);
      scrub_top(L);
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
    scrub_top(L);                   /* key, new key */
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
    if (has_secret(s, len, W.secrets)) {
      lua_pushvalue(L, sidx);
      lua_pushvalue(L, idx);
      scrub_top(L);
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
  idx = lua_absindex(L, idx);
  if (secrets == NULL)
    return;
  lua_pushlstring(L, secrets, block_len(secrets));
  scrub_walk(L, idx, lua_gettop(L));
  lua_pop(L, 1);
}

/* }====================================================== */


/*
** {======================================================
** Callback errors and log lines
** =======================================================
*/

/* Writes the error at idx to stderr, one report. */
static void write_error (lua_State *L, int idx, const char *why) {
  fprintf(stderr, "aigc: %s: %s\n", why, luaL_tolstring(L, idx, NULL));
  fflush(stderr);
  lua_pop(L, 1);
}

/*
** Reported exactly once (error.h). What is still kept when the client is
** closed or collected goes to stderr (aigc_error_flush).
*/
void aigc_error_report (lua_State *L, int eidx, int erridx, const char *secrets) {
  lua_Integer n;
  erridx = lua_absindex(L, erridx);
  eidx = lua_absindex(L, eidx);
  aigc_error_scrub(L, erridx, secrets);   /* no secret on stderr or in step()'s list */
  if (lua_getiuservalue(L, eidx, AIGC_EN_ERRHANDLER) == LUA_TFUNCTION) {
    lua_pushvalue(L, erridx);
    if (aigc_pcall(L, 1, 0) == LUA_OK)
      return;
    write_error(L, -1, "error in the client's error_handler");
    lua_pop(L, 1);
    write_error(L, erridx, "error in a callback, given to the error_handler that failed");
    return;
  }
  lua_pop(L, 1);
  if (lua_getiuservalue(L, eidx, AIGC_EN_ERRORS) != LUA_TTABLE) {   /* cannot be: kept a table */
    lua_pop(L, 1);
    write_error(L, erridx, "error in a callback");
    return;
  }
  n = (lua_Integer)lua_rawlen(L, -1);
  if (n >= AIGC_MAX_KEPT_ERRORS) {
    lua_pop(L, 1);
    write_error(L, erridx, "error in a callback (too many kept for step() already)");
    return;
  }
  lua_pushvalue(L, erridx);
  lua_rawseti(L, -2, n + 1);
  lua_pop(L, 1);
}

void aigc_error_flush (lua_State *L, int eidx) {
  lua_Integer i, n;
  if (lua_getiuservalue(L, eidx, AIGC_EN_ERRORS) == LUA_TTABLE) {
    n = (lua_Integer)lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      write_error(L, -1, "error in a callback (no step() collected it before the client closed)");
      lua_pop(L, 1);
      lua_pushnil(L);
      lua_rawseti(L, -2, i);
    }
  }
  lua_pop(L, 1);
}

void aigc_error_log (lua_State *L, int eidx, const char *secrets, const char *level,
                     const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  eidx = lua_absindex(L, eidx);
  if (lua_getiuservalue(L, eidx, AIGC_EN_LOG) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    return;
  }
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  lua_pushstring(L, level);
  aigc_error_push_scrubbed(L, msg, strlen(msg), secrets);   /* no secret in a log line */
  if (aigc_pcall(L, 2, 0) != LUA_OK) {
    aigc_error_report(L, eidx, -1, secrets);
    lua_pop(L, 1);
  }
}

/* }====================================================== */


/*
** {======================================================
** tostring(err)
** =======================================================
*/

/*
** Length of the first `max` bytes of s[0..len), cut back to the start of
** a UTF-8 character (a continuation byte is never the first one kept out).
*/
static size_t utf8_cut (const char *s, size_t len, size_t max) {
  if (len <= max)
    return len;
  while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
    max--;
  return max;
}

/*
** Pushes field `name` of the error at idx on one line (CR and LF become
** spaces), at most `max` bytes of it and then "…", and returns 1, if it
** is a string or a number; else pushes nothing and returns 0. The copy is
** made in a buffer of its own, with the field's value anchored below it:
** a luaL_Buffer must not have values pushed above it between its
** operations (that corrupts it once it grows past LUAL_BUFFERSIZE, e.g.
** with a server's 2 kB error message).
*/
static int push_field (lua_State *L, int idx, const char *name, size_t max) {
  int t = lua_getfield(L, idx, name);
  if (t == LUA_TSTRING || t == LUA_TNUMBER) {
    size_t len, n, i;
    const char *s = lua_tolstring(L, -1, &len);
    luaL_Buffer b;
    char *p;
    n = utf8_cut(s, len, max);
    p = luaL_buffinitsize(L, &b, n + 3);
    for (i = 0; i < n; i++)
      p[i] = (s[i] == '\n' || s[i] == '\r') ? ' ' : s[i];
    if (n < len) {
      memcpy(p + n, "\xE2\x80\xA6", 3);   /* … */
      n += 3;
    }
    luaL_pushresultsize(&b, n);
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
** TOSTRING_FIELD_MAX: a server cannot make the line long. Built as
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
    while (cut < len && msg[cut] != '\n' && msg[cut] != '\r')
      cut++;
    keep = utf8_cut(msg, cut, TOSTRING_MESSAGE_MAX);
    lua_pushlstring(L, msg, keep);
    if (keep < cut) {
      lua_pushliteral(L, "\xE2\x80\xA6");   /* … */
      lua_concat(L, 2);
    }
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
