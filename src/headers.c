/*
** headers.c — request headers built and checked, the response header
** store, and what a server says about retrying (headers.h).
*/
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "headers.h"


/*
** {======================================================
** Request headers
** =======================================================
*/

const char *aigc_headers_problem (const char *name, size_t nlen, const char *value, size_t vlen) {
  size_t i;
  if (nlen == 0)
    return "has an empty name";
  for (i = 0; i < nlen; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c <= 32 || c >= 127 || strchr("\"(),/:;<=>?@[\\]{}", c) != NULL)
      return "has an invalid name (a token: letters, digits and !#$%&'*+-.^_`|~)";
  }
  for (i = 0; i < vlen; i++) {
    unsigned char c = (unsigned char)value[i];
    if (c == '\r' || c == '\n' || c == '\0')
      return "contains CR, LF or NUL (refused: header injection)";
  }
  return NULL;
}

/* The problem of a "Name: value" line (or "Name;", libcurl's form of a
   header sent empty), or NULL; *nlen: its name's length (0: no name at all). */
static const char *line_problem (const char *line, size_t len, size_t *nlen) {
  const char *colon = (const char *)memchr(line, ':', len), *v;
  *nlen = colon ? (size_t)(colon - line) : 0;
  if (colon == NULL && len > 1 && line[len - 1] == ';') {
    *nlen = len - 1;
    return aigc_headers_problem(line, *nlen, "", 0);
  }
  if (*nlen == 0)
    return "is not a 'Name: value' line";
  for (v = colon + 1; v < line + len && (*v == ' ' || *v == '\t'); v++)
    ;
  return aigc_headers_problem(line, *nlen, v, (size_t)(line + len - v));
}

/* Builds a curl_slist from the array of "Name: value" strings at idx. */
struct curl_slist *aigc_build_headers (lua_State *L, int idx) {
  struct curl_slist *list = NULL;
  lua_Integer i, n = (lua_Integer)lua_rawlen(L, idx);
  for (i = 1; i <= n; i++) {
    size_t len, nlen;
    const char *line, *problem;
    struct curl_slist *next;
    lua_rawgeti(L, idx, i);
    line = lua_tolstring(L, -1, &len);
    if (line == NULL || lua_type(L, -1) != LUA_TSTRING) {
      curl_slist_free_all(list);
      luaL_error(L, "header %d is not a string", (int)i);
    }
    problem = line_problem(line, len, &nlen);
    if (problem != NULL) {
      curl_slist_free_all(list);
      if (nlen == 0)
        luaL_error(L, "invalid header line (expected 'Name: value')");
      luaL_error(L, "header '%s' %s", lua_pushlstring(L, line, nlen), problem);
    }
    next = curl_slist_append(list, line);
    lua_pop(L, 1);
    if (next == NULL) {
      curl_slist_free_all(list);
      luaL_error(L, "not enough memory");
    }
    list = next;
  }
  return list;
}

/* }====================================================== */


/*
** {======================================================
** Response headers: "name\0value\0" pairs, names lower-cased
** =======================================================
*/

void aigc_headers_start (aigc_headers *h) {
  aigc_buf_clear(&h->buf);
  h->n = 0;
  h->want_status_line = 1;
  h->ended = 0;
  h->wire = 0;
}

void aigc_headers_free (aigc_headers *h) {
  aigc_buf_free(&h->buf);
  h->n = 0;
}

/* A status line: what came before is forgotten (a 1xx response). */
static void status_line (aigc_headers *h, const char *line, size_t len, long *status) {
  const char *sp = (const char *)memchr(line, ' ', len);
  long st = 0;
  h->want_status_line = 0;
  h->ended = 0;
  aigc_buf_clear(&h->buf);
  h->n = 0;
  if (sp != NULL)
    for (sp++; sp < line + len && *sp >= '0' && *sp <= '9' && st < 100000; sp++)
      st = st * 10 + (*sp - '0');
  *status = st;
}

/*
** Copies a header name of n bytes to o, lower-cased, a NUL made a space.
** 8 bytes at a time (a response's ~14 names byte by byte were ~2k
** instructions): in a word without a NUL, the ASCII bytes 'A'..'Z' (found
** on their low 7 bits, whose sums cannot carry into the next byte) get
** 0x20; a word holding a NUL, and the tail, go byte by byte.
*/
#define ONES ((uint64_t)0x0101010101010101u)
#define HIGHS (ONES << 7)

static void copy_name (char *o, const char *s, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w, low, upper;
    memcpy(&w, s + i, 8);
    if (((w - ONES) & ~w & HIGHS) != 0)   /* a NUL in it */
      break;
    low = w & (ONES * 0x7f);
    upper = ((low + ONES * (0x80 - 'A')) ^ (low + ONES * (0x80 - 'Z' - 1))) & ~w & HIGHS;
    w |= upper >> 2;
    memcpy(o + i, &w, 8);
  }
  for (; i < n; i++) {
    char c = s[i];
    if (c == '\0')
      c = ' ';
    o[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
  }
}

/*
** A continuation of the last header's value (RFC 9112 5.2's obs-fold: a
** line that starts with a blank, which libcurl hands alone): joined to
** that value, the fold made one space, as the RFC lets a recipient do.
** It was dropped (no colon: junk) or stored as a header named " x".
*/
static int fold_line (aigc_headers *h, const char *v, size_t len) {
  const char *vend = v + len;
  size_t vlen, i;
  char *o;
  while (v < vend && (*v == ' ' || *v == '\t'))
    v++;
  while (vend > v && (vend[-1] == '\r' || vend[-1] == '\n' || vend[-1] == ' ' || vend[-1] == '\t'))
    vend--;
  vlen = (size_t)(vend - v);
  if (vlen == 0)
    return AIGC_HEADERS_OK;
  if (aigc_buf_reserve(&h->buf, vlen + 2) != 0)
    return AIGC_HEADERS_NOMEM;
  o = h->buf.data + h->buf.len - 1;   /* the last value's NUL */
  if (h->buf.len >= 2 && o[-1] != '\0')   /* (an empty value gets no space first) */
    *o++ = ' ';
  memcpy(o, v, vlen);
  for (i = 0; i < vlen; i++)
    if (o[i] == '\0')
      o[i] = ' ';
  o += vlen;
  *o++ = '\0';
  *o = '\0';
  h->buf.len = (size_t)(o - h->buf.data);
  return AIGC_HEADERS_OK;
}

int aigc_headers_line (aigc_headers *h, const char *line, size_t len, long *status) {
  size_t nlen, vlen, i;
  const char *colon, *v, *vend;
  char *o;
  /* All the bytes, not only those kept: 20,000 empty "100 Continue"
     responses are 300 KB too, and libcurl fails them as a receive error. */
  if (len > AIGC_MAX_HEADER_BYTES - h->wire)
    return AIGC_HEADERS_TOOBIG;
  h->wire += len;
  if (h->want_status_line && len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
    /* Only here: a header line that happens to start with "HTTP/" in the
       middle of the headers is just a header. */
    status_line(h, line, len, status);
    return AIGC_HEADERS_OK;
  }
  h->want_status_line = 0;
  if (len > 0 && (line[0] == ' ' || line[0] == '\t') && h->n > 0)
    return fold_line(h, line, len);
  colon = (const char *)memchr(line, ':', len);
  if (colon == NULL) {
    /* The blank line ending the headers (or junk): a status line may
       follow (after a 1xx response). */
    if (len <= 2 && (len == 0 || line[0] == '\r' || line[0] == '\n')) {
      h->want_status_line = 1;
      h->ended = *status >= 200;
    }
    return AIGC_HEADERS_OK;
  }
  nlen = (size_t)(colon - line);
  /* Blanks before the colon ("X-Request-Id : req_1", which RFC 9112 has
     a proxy remove) are no part of the name: the header is still found. */
  while (nlen > 0 && (line[nlen - 1] == ' ' || line[nlen - 1] == '\t'))
    nlen--;
  v = colon + 1;
  vend = line + len;
  while (v < vend && (*v == ' ' || *v == '\t'))
    v++;
  while (vend > v && (vend[-1] == '\r' || vend[-1] == '\n' || vend[-1] == ' ' || vend[-1] == '\t'))
    vend--;
  /* Room for a typical response's headers at once, not by doublings. */
  vlen = nlen + (size_t)(vend - v) + 2;
  if (aigc_buf_reserve(&h->buf, h->buf.cap == 0 && vlen < 1024 ? 1024 : vlen) != 0)
    return AIGC_HEADERS_NOMEM;
  /* Through a local pointer: stores through h->buf.data could alias h
     itself, which kept the compiler reloading it at every byte. */
  o = h->buf.data + h->buf.len;
  copy_name(o, line, nlen);
  o += nlen;
  *o++ = '\0';
  vlen = (size_t)(vend - v);
  memcpy(o, v, vlen);
  if (memchr(o, '\0', vlen) != NULL)   /* a NUL would cut the value short */
    for (i = 0; i < vlen; i++)
      if (o[i] == '\0')
        o[i] = ' ';
  o += vlen;
  *o++ = '\0';
  *o = '\0';
  h->buf.len = (size_t)(o - h->buf.data);
  h->n++;
  return AIGC_HEADERS_OK;
}

const char *aigc_headers_find (const aigc_headers *h, const char *name, size_t *vlen) {
  const char *p = h->buf.data, *end = p + h->buf.len;
  size_t size = strlen(name) + 1;   /* (names of another length are skipped without a compare) */
  if (p == NULL)
    return NULL;
  while (p < end) {
    size_t psize = strlen(p) + 1;
    const char *value = p + psize;
    size_t len = strlen(value);
    if (psize == size && memcmp(p, name, size) == 0) {
      if (vlen)
        *vlen = len;
      return value;
    }
    p = value + len + 1;
  }
  return NULL;
}

/* Whether the header name at p (of length nlen) appears before p in the
   store that starts at `data`. */
static int seen_before (const char *data, const char *p, size_t nlen) {
  const char *q = data;
  while (q < p) {
    size_t qlen = strlen(q);
    const char *value = q + qlen + 1;
    if (qlen == nlen && memcmp(q, p, nlen) == 0)
      return 1;
    q = value + strlen(value) + 1;
  }
  return 0;
}

/* Headers up to this many find repeats by a scan; beyond, by the table. */
#define FEW_HEADERS 32

/*
** A typical response has a dozen headers: repeats are found in C (a 64-bit
** filter of the names, then a scan), which costs less than a table lookup
** per header; a repeat is joined to the value at once. The table is at t.
*/
static void push_few (lua_State *L, const char *data, size_t len, int t) {
  const char *p = data, *end = data + len;
  uint64_t seen = 0;
  while (p < end) {
    size_t nlen = strlen(p);
    const char *value = p + nlen + 1;
    size_t vlen = strlen(value);
    uint64_t bit = (uint64_t)1 << ((nlen * 7 + (unsigned char)p[0]
                                    + (nlen ? (unsigned char)p[nlen - 1] : 0)) & 63);
    int again = (seen & bit) != 0 && seen_before(data, p, nlen);
    seen |= bit;
    lua_pushlstring(L, p, nlen);
    if (again) {
      lua_pushvalue(L, -1);
      lua_rawget(L, t);
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, value, vlen);
      lua_concat(L, 3);
    }
    else
      lua_pushlstring(L, value, vlen);
    lua_rawset(L, t);
    p = value + vlen + 1;
  }
}

/* Joins each list of values at `lists` (name -> { v1, v2, ... }) into t. */
static void join_lists (lua_State *L, int t, int lists) {
  lua_pushnil(L);
  while (lua_next(L, lists) != 0) {   /* name, list */
    luaL_Buffer b;
    lua_Integer i, n = (lua_Integer)lua_rawlen(L, -1);
    int list = lua_gettop(L);
    lua_pushvalue(L, -2);   /* the name, for the rawset below */
    luaL_buffinit(L, &b);
    for (i = 1; i <= n; i++) {
      if (i > 1)
        luaL_addstring(&b, ", ");
      lua_rawgeti(L, list, i);
      luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    lua_rawset(L, t);
    lua_pop(L, 1);   /* the list; the name stays for lua_next */
  }
}

/*
** Many headers: each name is looked up in the table; the values of a name
** repeated are gathered in a list and joined once at the end (joining as
** they come would copy the growing value each time: quadratic).
*/
static void push_many (lua_State *L, const char *data, size_t len, int t) {
  const char *p = data, *end = data + len;
  int lists = 0;
  while (p < end) {
    size_t nlen = strlen(p);
    const char *value = p + nlen + 1;
    size_t vlen = strlen(value);
    lua_pushlstring(L, p, nlen);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, t) == LUA_TNIL) {
      lua_pop(L, 1);
      lua_pushlstring(L, value, vlen);
      lua_rawset(L, t);
    }
    else {
      lua_pop(L, 1);
      if (!lists) {            /* lists[name] = { first value, ... } */
        lua_newtable(L);
        lua_insert(L, t + 1);
        lists = t + 1;
      }
      lua_pushvalue(L, -1);
      if (lua_rawget(L, lists) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_createtable(L, 4, 0);
        lua_pushvalue(L, -2);
        lua_rawget(L, t);
        lua_rawseti(L, -2, 1);
        lua_pushvalue(L, -2);
        lua_pushvalue(L, -2);
        lua_rawset(L, lists);
      }
      lua_pushlstring(L, value, vlen);
      lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
      lua_pop(L, 2);
    }
    p = value + vlen + 1;
  }
  if (lists) {
    join_lists(L, t, lists);
    lua_remove(L, lists);
  }
}

/*
** Each name is made a Lua string once and the table is sized exactly:
** time linear in the headers whatever a server sends (50,000 of them, or
** one name 50,000 times). `data` (len bytes, n headers) is a store's
** "name\0value\0"... text, read across Lua allocations: its owner keeps
** it alive and unchanged (a pinned request, or a Lua string on the stack).
*/
static void push_store (lua_State *L, const char *data, size_t len, size_t n) {
  int t;
  lua_createtable(L, 0, n > INT32_MAX ? INT32_MAX : (int)n);
  t = lua_gettop(L);
  if (data == NULL)
    return;
  if (n <= FEW_HEADERS)
    push_few(L, data, len, t);
  else
    push_many(L, data, len, t);
}

void aigc_headers_push (lua_State *L, const aigc_headers *h) {
  push_store(L, h->buf.data, h->buf.len, h->n);
}


/*
** res.headers built on first read. The result's own metatable holds a copy
** of the store (one Lua string: a memcpy, no hashing) at [1]; __index
** makes the table from it when "headers" is read and stores it in the
** result, so later reads are plain field reads. __pairs (5.2+, and the
** JSON encoder on every Lua) lists it too. The copy is pinned by the
** stack while the table is made, whatever a finalizer does meanwhile.
*/
#define STORE_SLOT 1

/* Pushes obj.headers made from the store in obj's metatable (an empty
   table when there is none) and sets it in obj. */
static void materialize (lua_State *L, int obj) {
  size_t len = 0, n = 0;
  const char *data = NULL, *p;
  if (lua_getmetatable(L, obj)) {
    lua_rawgeti(L, -1, STORE_SLOT);
    data = lua_tolstring(L, -1, &len);   /* a string, or NULL */
  }
  for (p = data; p != NULL && p < data + len; p += strlen(p) + 1)
    n++;
  if (len > 0 && (data[len - 1] != '\0' || n % 2 != 0))
    data = NULL;   /* not a store (a script changed the metatable): none */
  push_store(L, data, len, n / 2);
  lua_pushliteral(L, "headers");
  lua_pushvalue(L, -2);
  lua_rawset(L, obj);
}

static int is_headers_key (lua_State *L, int idx) {
  size_t len;
  const char *k;
  if (lua_type(L, idx) != LUA_TSTRING)
    return 0;
  k = lua_tolstring(L, idx, &len);
  return len == 7 && memcmp(k, "headers", 7) == 0;
}

/* __index(res, key): only "headers" is computed; anything else is absent. */
/* The metamethods' keys (kept: a closure per push on 5.1 and LuaJIT,
   see compat.h). */
static const char lazy_index_key = 'i', lazy_pairs_key = 'p';

static int lazy_index (lua_State *L) {
  if (!is_headers_key(L, 2))
    return 0;
  materialize(L, 1);
  return 1;
}

/* next(t, k), without the global `next` (a script may replace it). */
static int raw_next (lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  if (lua_next(L, 1))
    return 2;
  lua_pushnil(L);
  return 1;
}

/* __pairs(res): the headers made first, so that a listing has them. */
static int lazy_pairs (lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushliteral(L, "headers");
  if (lua_rawget(L, 1) == LUA_TNIL)
    materialize(L, 1);
  lua_settop(L, 1);
  lua_pushcfunction(L, raw_next);
  lua_insert(L, 1);
  lua_pushnil(L);
  return 3;
}

void aigc_headers_materialize (lua_State *L, int obj) {
  int top = lua_gettop(L);
  obj = lua_absindex(L, obj);
  if (lua_type(L, obj) != LUA_TTABLE || !lua_getmetatable(L, obj))
    return;
  lua_pushliteral(L, "__index");
  lua_rawget(L, -2);
  if (lua_tocfunction(L, -1) == lazy_index) {
    lua_pushliteral(L, "headers");
    if (lua_rawget(L, obj) == LUA_TNIL)
      materialize(L, obj);
  }
  lua_settop(L, top);
}

void aigc_headers_set_lazy (lua_State *L, const aigc_headers *h, int obj) {
  obj = lua_absindex(L, obj);
  lua_createtable(L, 1, 2);
  lua_pushlstring(L, h->buf.data != NULL ? h->buf.data : "", h->buf.len);
  lua_rawseti(L, -2, STORE_SLOT);
  aigc_push_kept_cfunction(L, lazy_index, &lazy_index_key);
  lua_setfield(L, -2, "__index");
  aigc_push_kept_cfunction(L, lazy_pairs, &lazy_pairs_key);
  lua_setfield(L, -2, "__pairs");
  lua_setmetatable(L, obj);
}

/* }====================================================== */


/*
** {======================================================
** Retrying, as the server says
** =======================================================
*/

/*
** A number as the SDKs read a delay (Python's float(), Node's parseFloat()
** agree on these): [+]digits[.digits][e[+-]digits], the digits on either
** side of the point optional but not both ("2", "1.5", ".5", "5.", "1e3",
** "+2"), or NAN. Read here, not with strtod: strtod follows the C locale's
** decimal point (a host under LC_NUMERIC=de_DE reads "1.5" as 1, "1" and
** garbage) and takes what is no delay: hex ("0x2"), "inf", "nan". A minus
** sign is NAN too (a negative delay is none: the backoff, as theirs).
** m / 10^k is correctly rounded while m < 2^53 and |k| <= 22 (10^k
** exact); longer fractions are cut there (no delay needs a nanosecond).
*/
static double plain_decimal (const char *v) {
  double m = 0, d;
  int k = 0, digits = 0, e = 0, eneg = 0;
  const char *s = v + (*v == '+');
  for (; *s >= '0' && *s <= '9'; s++, digits++)
    m = m * 10 + (*s - '0');
  if (*s == '.')
    for (s++; *s >= '0' && *s <= '9'; s++, digits++)
      if (k < 22) {
        m = m * 10 + (*s - '0');
        k++;
      }
  if (digits == 0)
    return NAN;
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '+' || *s == '-')
      eneg = *s++ == '-';
    if (!(*s >= '0' && *s <= '9'))
      return NAN;
    for (; *s >= '0' && *s <= '9'; s++)
      if (e < 1000)
        e = e * 10 + (*s - '0');
  }
  if (*s != '\0' || !isfinite(m))   /* (hundreds of digits overflow) */
    return NAN;
  k = eneg ? k + e : k - e;
  d = k >= 0 ? m / pow(10.0, (double)k) : m * pow(10.0, (double)-k);
  return isfinite(d) ? d : NAN;
}

/* One element of a retry-after value (b..e, blanks trimmed) as seconds
   (`ms`: in milliseconds), or NAN. */
static double delay_of (const char *b, const char *e, int ms) {
  char tmp[128];
  size_t n;
  double d;
  time_t when;
  while (b < e && (*b == ' ' || *b == '\t'))
    b++;
  while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
    e--;
  n = (size_t)(e - b);
  if (n == 0 || n >= sizeof tmp)
    return NAN;
  memcpy(tmp, b, n);
  tmp[n] = '\0';
  d = plain_decimal(tmp);
  if (d == d || ms)
    return ms ? d / 1000.0 : d;
  /* An HTTP-date starts with its day name in all three of its forms
     (RFC 9110 5.6.7); curl_getdate alone would read a bare "-5" or
     "0x2" as some date. A date in the past means now (0). */
  if (!((*tmp >= 'A' && *tmp <= 'Z') || (*tmp >= 'a' && *tmp <= 'z')))
    return NAN;
  when = curl_getdate(tmp, NULL);
  if (when == (time_t)-1)
    return NAN;
  d = difftime(when, time(NULL));
  return d > 0 ? d : 0;
}

/* The end of the element of a list value that starts at p: the next
   comma, or for a date whose day name a comma follows ("Sun, 06 Nov 1994
   08:49:37 GMT", RFC 850's "Sunday, 06-Nov-94 ..."), the one after. */
static const char *element_end (const char *p, const char *end) {
  const char *q = p, *comma;
  while (q < end && (*q == ' ' || *q == '\t'))
    q++;
  comma = q < end ? (const char *)memchr(q, ',', (size_t)(end - q)) : NULL;
  if (comma == NULL)
    return end;
  while (q < comma && ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z')))
    q++;
  if (q == comma && comma > p && comma[-1] != ' ') {   /* a day name alone */
    const char *next = comma + 1;
    comma = next < end ? (const char *)memchr(next, ',', (size_t)(end - next)) : NULL;
    return comma ? comma : end;
  }
  return comma;
}

/*
** The longest wait the values of header `name` ask for (NAN: none usable).
** Every line of it counts, and every element of a line's comma-separated
** list (HTTP's same thing: res.headers shows the lines joined with ", ",
** a cassette replays them so): a proxy that adds its own Retry-After to
** the server's is obeyed in both, so is the longest. (httpx joins them and
** reads no number from "5, 7": the backoff; Node's parseFloat takes the
** first.)
*/
static double longest_delay (const aigc_headers *h, const char *name, int ms) {
  const char *p = h->buf.data, *end = p + h->buf.len;
  size_t size = strlen(name) + 1;
  double best = NAN;
  if (p == NULL)
    return NAN;
  while (p < end) {
    size_t psize = strlen(p) + 1;
    const char *value = p + psize, *vend = value + strlen(value), *q = value;
    if (psize == size && memcmp(p, name, size) == 0)
      while (q < vend) {
        const char *e = element_end(q, vend);
        double d = delay_of(q, e, ms);
        if (d == d && !(best >= d))
          best = d;
        q = e < vend ? e + 1 : vend;
      }
    p = vend + 1;
  }
  return best;
}

double aigc_headers_retry_after (const aigc_headers *h) {
  /* Never negative: a sign makes the value malformed (ignored, as if not
     sent); a date in the past means now (0). */
  double d = longest_delay(h, "retry-after-ms", 1);
  return d == d ? d : longest_delay(h, "retry-after", 0);
}

/* 1 or 0 for an element of x-should-retry that is "true" or "false"
   (blanks around it dropped), else -1. */
static int truth_of (const char *q, const char *e) {
  while (q < e && (*q == ' ' || *q == '\t'))
    q++;
  while (e > q && (e[-1] == ' ' || e[-1] == '\t'))
    e--;
  if (e - q == 4 && memcmp(q, "true", 4) == 0)
    return 1;
  return e - q == 5 && memcmp(q, "false", 5) == 0 ? 0 : -1;
}

/*
** Every line of x-should-retry and every element of each (res.headers
** joins them with ", "): the verdict when all say the same, else none
** (-1: the status decides). Only the first line was read: a proxy's
** "false" before the server's "true" stopped the retries the server asked
** for, while err.retryable's reader saw "false, true". (The SDKs compare
** the joined value with "true" and "false": repeats, even alike, are no
** verdict there; alike ones are one here.)
*/
int aigc_headers_should_retry (const aigc_headers *h) {
  const char *p = h->buf.data, *end = p + h->buf.len;
  int says = -2;
  if (p == NULL)
    return -1;
  while (p < end) {
    size_t psize = strlen(p) + 1;
    const char *value = p + psize, *vend = value + strlen(value), *q = value;
    if (psize == sizeof "x-should-retry" && memcmp(p, "x-should-retry", psize) == 0)
      for (;;) {
        const char *e = (const char *)memchr(q, ',', (size_t)(vend - q));
        int t = truth_of(q, e != NULL ? e : vend);
        if (t < 0 || (says >= 0 && t != says))
          return -1;
        says = t;
        if (e == NULL)
          break;
        q = e + 1;
      }
    p = vend + 1;
  }
  return says < 0 ? -1 : says;
}

/*
** Pushes the values of every line of header `name` joined with ", " (what
** res.headers shows) and returns 1; none: pushes nothing, returns 0. By
** offsets, each value pushed before any other allocation: a finalizer
** run by one may make the store grow (moved) or clear it (the walk ends).
*/
int aigc_headers_push_all (lua_State *L, const aigc_headers *h, const char *name) {
  size_t size = strlen(name) + 1, off = 0;
  int n = 0;
  while (h->buf.data != NULL && off < h->buf.len) {
    const char *p = h->buf.data + off;
    size_t psize = strlen(p) + 1, vlen = strlen(p + psize);
    off += psize + vlen + 1;
    if (psize == size && memcmp(p, name, size) == 0) {
      lua_pushlstring(L, p + psize, vlen);
      if (n++ > 0) {
        lua_pushliteral(L, ", ");
        lua_insert(L, -2);
        lua_concat(L, 3);
      }
    }
  }
  return n > 0;
}

/* }====================================================== */
