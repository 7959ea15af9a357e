/*
** jsonlua.c — Lua values <-> JSON.
**
** Encoding walks a Lua value and writes JSON text into a buffer owned by
** someone with a __gc (a request, or a box on the stack), so a raised
** error frees it. Decoding is two steps: json.c parses the text into a C
** tree (validating everything first, no Lua involved), then
** aigc_jsonlua_push builds the Lua tables with their exact sizes.
**
** The Lua side of the mapping:
**   JSON null       <-> aigc.null (a light userdata NULL, the same value as
**                       cjson.null, so the two libraries agree)
**   JSON array      <-> a sequence 1..n; decoded arrays carry the aigc.array
**                       metatable so an empty one encodes back as []
**   JSON object     <-> a table with string keys; an empty unmarked table
**                       encodes as {} (JSON Schema's `properties = {}` is the
**                       common case; aigc.array{} says [])
**   numbers          <-> integers stay integers (exact to 64 bits), floats
**                       are written with the fewest digits that read back
**                       exactly
** What JSON cannot carry raises an error naming where it is:
**   "messages[2].content: cannot encode a function".
**
** Tables with a metatable (the README's "Marshalling"). aigc sends what the
** script would see, or refuses; it never sends less without saying so:
**   - no metatable, the aigc.array mark, or a metatable with none of
**     __len, __pairs, __index (a __tostring, a __name, a __gc...): the raw
**     table, as above;
**   - __len: an array of #t items, each read as t[i] (so __index is
**     honoured): a proxy list;
**   - __pairs (and no __len): what pairs(t) gives, classified as a raw
**     table would be (1..n keys: an array; string keys: an object);
**   - __index and neither, __index a table: the table's own fields, plus
**     the fields it inherits through the chain of __index tables (its
**     metatable's __index, that table's metatable's __index...) that it
**     does not override, leaving out functions (methods) and keys that
**     start with "__" (metamethods): a class instance, or a message whose
**     `content` comes from a prototype, is sent as the script sees it;
**     a chain that comes back to a table already in it is refused;
**   - __index a function (anywhere in the chain) and no __pairs: refused
**     with the path. Nothing can list what a function answers: sending the
**     raw table could drop fields silently, which is the one thing a
**     marshaller must not do. Give the metatable __pairs, or pass a plain
**     table.
** Numbers on the Luas whose numbers are doubles (5.1, 5.2, LuaJIT): see
** compat.h (integers exact to 2^53; beyond, refused with the path).
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "jsonlua.h"

/* The decoder's limit and a few levels more: a decoded value always
   encodes again (json.h), also a level or two deeper than it came (a
   streamed Responses item, event.item, goes back as params.input[i]). */
#define ENCODE_MAX_DEPTH 208
#if ENCODE_MAX_DEPTH < AIGC_JSON_DEFAULT_MAX_DEPTH + 8
#error "the encoder must take what the decoder gives, a few levels deeper"
#endif
#define DEPTH_TEXT_(n) #n
#define DEPTH_TEXT(n) DEPTH_TEXT_(n)

typedef struct path_seg {
  const char *key;         /* NULL: an array index */
  size_t len;
  lua_Integer index;
} path_seg;

typedef struct encoder {
  lua_State *L;
  aigc_buf *out;
  int array_mt;            /* stack index of the aigc.array metatable */
  int depth;
  const void *ancestors[ENCODE_MAX_DEPTH];   /* tables being encoded */
  path_seg path[ENCODE_MAX_DEPTH];
  const char *what;        /* "params" or "value": the root's name */
  const char *fname;       /* misuse is reported as argument `arg` of `fname` */
  int arg;
  int request;             /* a request's params: known array fields say [] */
  int busy;                /* taken: an encode under way, or one that raised */
} encoder;


/*
** {======================================================
** Errors
** =======================================================
*/

/* Appends the path of the value being encoded, e.g. "messages[2].content". */
static void push_path (encoder *enc) {
  lua_State *L = enc->L;
  luaL_Buffer b;
  int i;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, enc->what);
  for (i = 0; i < enc->depth; i++) {
    const path_seg *s = &enc->path[i];
    if (s->key != NULL) {
      luaL_addchar(&b, '.');
      luaL_addlstring(&b, s->key, s->len > 64 ? 64 : s->len);
    }
    else {
      char num[32];
      snprintf(num, sizeof num, "[%lld]", (long long)s->index);
      luaL_addstring(&b, num);
    }
  }
  luaL_pushresult(&b);
}

/* Raises "bad argument #N to 'FN' (<path>: <detail>)" at the caller's line. */
static int encode_error (encoder *enc, const char *fmt, const char *detail) {
  lua_State *L = enc->L;
  push_path(enc);
  lua_pushfstring(L, fmt, lua_tostring(L, -1), detail);
  return aigc_argerror(L, enc->arg, enc->fname, "%s", lua_tostring(L, -1));
}

/* }====================================================== */


/*
** {======================================================
** Encoding
** =======================================================
*/

static void out_fail (encoder *enc) {
  luaL_error(enc->L, "not enough memory");
}

static void out_add (encoder *enc, const char *s, size_t n) {
  if (aigc_buf_append(enc->out, s, n) != 0)
    out_fail(enc);
}

static void out_char (encoder *enc, char c) {
  if (aigc_buf_putc(enc->out, c) != 0)
    out_fail(enc);
}

static void encode_string (encoder *enc, const char *s, size_t len) {
  size_t bad = 0;
  int rc = aigc_json_write_string(enc->out, s, len, &bad);
  if (rc == -1)
    out_fail(enc);
  else if (rc == -2) {
    char detail[64];   /* (bytes counted from 1, as Lua's string functions do: every "at byte") */
    snprintf(detail, sizeof detail, "%zu", bad + 1);
    encode_error(enc, "%s: invalid UTF-8 at byte %s of a string", detail);
  }
}

static void encode_value (encoder *enc, int idx);

/*
** The floats of a request body are nearly always a few decimals
** (temperature = 0.7, top_p = 0.95), and aigc_json_format_double finds their
** text with snprintf and strtod (1.5% of a request). If, for the least
** k <= 6, m = round(|d| * 10^k) is below 10^15 and m / 10^k == |d| in
** double arithmetic, then the decimal m / 10^k reads back as d (m and 10^k
** are exact, and division and strtod both round correctly), it has at
** most 15 significant digits and no trailing zero, and it is within half
** an ulp of d, so it is exactly what "%.15g" prints, and what
** aigc_json_format_double returns. Returns its length, or 0 to fall back.
*/
static int format_short_double (char *buf, double d) {
  static const double p10[] = { 1, 10, 100, 1e3, 1e4, 1e5, 1e6 };
  double a = d < 0 ? -d : d;
  int k, n = 0;
  if (!(a >= 1e-4 && a < 1e15))   /* where %.15g writes no exponent */
    return 0;
  for (k = 0; k <= 6; k++) {
    double m = floor(a * p10[k] + 0.5);
    if (m >= 1e15)
      return 0;
    if (m / p10[k] == a) {
      uint64_t u = (uint64_t)m, scale = 1;
      char digits[24];
      int nd = 0, i;
      for (i = 0; i < k; i++)
        scale *= 10;
      if (d < 0)
        buf[n++] = '-';
      n += aigc_json_format_int(buf + n, (int64_t)(u / scale));
      buf[n++] = '.';
      if (k == 0)
        buf[n++] = '0';   /* as aigc_json_format_double: a float keeps its ".0" */
      else {
        u %= scale;
        for (i = 0; i < k; i++) {
          digits[nd++] = (char)('0' + u % 10);
          u /= 10;
        }
        while (nd > 0)
          buf[n++] = digits[--nd];
      }
      buf[n] = '\0';
      return n;
    }
  }
  return 0;
}

static void push_seg_key (encoder *enc, const char *key, size_t len) {
  enc->path[enc->depth - 1].key = key;
  enc->path[enc->depth - 1].len = len;
}

static void push_seg_index (encoder *enc, lua_Integer i) {
  enc->path[enc->depth - 1].key = NULL;
  enc->path[enc->depth - 1].index = i;
}

/* Writes elements 1..n of the table at idx as a JSON array, read raw or,
   for a proxy (`meta`), as t[i] through __index. */
static void encode_array (encoder *enc, int idx, lua_Integer n, int meta) {
  lua_State *L = enc->L;
  lua_Integer i;
  out_char(enc, '[');
  for (i = 1; i <= n; i++) {
    if (i > 1)
      out_char(enc, ',');
    push_seg_index(enc, i);
    if (meta)
      lua_geti(L, idx, i);
    else
      lua_rawgeti(L, idx, i);
    if (lua_isnil(L, -1))
      encode_error(enc, "%s: %s", "sparse array (a hole at this index; use aigc.null)");
    encode_value(enc, lua_gettop(L));
    lua_pop(L, 1);
  }
  out_char(enc, ']');
}

/*
** Raises when the aigc.array-marked table at idx has a number key outside
** 1..n (n its raw length): a hole the length stops at ({1, nil, 3} is
** n = 1 on LuaJIT, and t[n + 2] = v anywhere) would otherwise drop what
** follows it without a word. The error names the table itself.
*/
static void check_marked_keys (encoder *enc, int idx, lua_Integer n) {
  lua_State *L = enc->L;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TNUMBER) {
      lua_Number k = lua_tonumber(L, -1);
      if (!(k >= 1 && k <= (lua_Number)n)) {
        enc->depth--;
        encode_error(enc, "%s: %s", "sparse array (integer keys beyond the sequence)");
      }
    }
  }
}

/* How the table at idx is read (see the top of this file). */
enum { READ_RAW, READ_MARKED, READ_LEN, READ_PAIRS, READ_CHAIN };

static int has_metafield (lua_State *L, int idx, const char *name) {
  if (luaL_getmetafield(L, idx, name) == LUA_TNIL)   /* raw: no __index chain */
    return 0;
  lua_pop(L, 1);
  return 1;
}

static int read_mode (encoder *enc, int idx) {
  lua_State *L = enc->L;
  int marked;
  if (!lua_getmetatable(L, idx))
    return READ_RAW;
  marked = lua_rawequal(L, -1, enc->array_mt);
  lua_pop(L, 1);
  if (marked)
    return READ_MARKED;
  if (has_metafield(L, idx, "__len"))
    return READ_LEN;
  if (has_metafield(L, idx, "__pairs"))
    return READ_PAIRS;
  if (has_metafield(L, idx, "__index"))
    return READ_CHAIN;
  return READ_RAW;
}

/* The longest chain of __index tables followed (a cycle is caught first;
   this bounds a chain of distinct tables built on purpose). */
#define CHAIN_MAX 100

/*
** Pushes a plain table of what the table at idx shows through its chain
** of __index tables (see the top of this file): its own raw fields, then,
** level by level, the inherited ones it does not have yet, neither
** functions nor keys starting with "__". Raises, with the path, on a
** function __index or a cycle.
*/
static void push_chain_snapshot (encoder *enc, int idx) {
  lua_State *L = enc->L;
  int snap, seen, level = 0;
  luaL_checkstack(L, 8, "aigc __index chain");
  lua_newtable(L);
  snap = lua_gettop(L);
  lua_newtable(L);                    /* tables of the chain met so far */
  seen = snap + 1;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {     /* own fields: all of them */
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, snap);
  }
  lua_pushvalue(L, idx);
  for (;;) {                          /* the table at the top: the last level */
    int type = luaL_getmetafield(L, -1, "__index");
    if (type == LUA_TNIL)
      break;
    if (type != LUA_TTABLE)
      encode_error(enc, "%s: %s", "cannot encode a table whose __index is a function and whose "
                   "metatable has no __pairs (its fields cannot be listed: give the metatable "
                   "__pairs, or pass a plain table)");
    lua_pushvalue(L, -1);
    if (lua_rawget(L, seen) != LUA_TNIL || lua_rawequal(L, -1, idx) || ++level > CHAIN_MAX)
      encode_error(enc, "%s: %s", "its __index chain comes back to a table already in it "
                   "(a cycle), or is longer than 100 tables");
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_pushboolean(L, 1);
    lua_rawset(L, seen);
    lua_replace(L, -2);               /* the next level replaces this one */
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {    /* key, value */
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
      if (lua_type(L, -1) == LUA_TFUNCTION || (k != NULL && k[0] == '_' && k[1] == '_')) {
        lua_pop(L, 1);
        continue;
      }
      lua_pushvalue(L, -2);
      if (lua_rawget(L, snap) != LUA_TNIL) {   /* overridden nearer */
        lua_pop(L, 2);
        continue;
      }
      lua_pop(L, 1);
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, snap);
    }
  }
  lua_settop(L, snap);
}

/* At most this many entries from one __pairs iteration (an endless
   iterator is a bug to report, not memory to exhaust). */
#define PAIRS_MAX ((lua_Integer)1 << 24)

/*
** Pushes a plain table holding what pairs(t) gives for the table at idx
** (its __pairs called as Lua's pairs does). The encoder then reads that
** snapshot, so the classification and the writing see the same entries.
*/
static void push_pairs_snapshot (encoder *enc, int idx) {
  lua_State *L = enc->L;
  lua_Integer count = 0;
  int snap, iter;
  lua_newtable(L);
  snap = lua_gettop(L);
  luaL_getmetafield(L, idx, "__pairs");
  lua_pushvalue(L, idx);
  lua_call(L, 1, 3);                  /* next, state, control */
  iter = snap + 1;
  for (;;) {
    lua_pushvalue(L, iter);
    lua_pushvalue(L, iter + 1);
    lua_pushvalue(L, iter + 2);
    lua_call(L, 2, 2);                /* key, value */
    if (lua_isnil(L, -2)) {
      lua_pop(L, 2);
      break;
    }
    if (++count > PAIRS_MAX)
      encode_error(enc, "%s: %s", "its __pairs gave more than 16777216 entries");
    lua_pushvalue(L, -2);
    lua_replace(L, iter + 2);         /* the next control value */
    if (lua_isnil(L, -1) || (lua_type(L, -2) == LUA_TNUMBER && lua_tonumber(L, -2) != lua_tonumber(L, -2)))
      lua_pop(L, 2);                  /* a nil value is no entry; a NaN key is none either */
    else
      lua_rawset(L, snap);
  }
  lua_settop(L, snap);
}

static void encode_raw_table (encoder *enc, int idx);

/*
** Writes the table at idx after checking for a cycle and the depth, by the
** rules of its metatable (see the top of this file).
*/
static void encode_table (encoder *enc, int idx) {
  lua_State *L = enc->L;
  const void *self = lua_topointer(L, idx);
  int i, mode;

  for (i = 0; i < enc->depth; i++)
    if (enc->ancestors[i] == self)
      encode_error(enc, "%s: %s", "cannot encode a table that contains itself (a cycle)");
  if (enc->depth >= ENCODE_MAX_DEPTH)
    encode_error(enc, "%s: %s", "nesting too deep (more than " DEPTH_TEXT(ENCODE_MAX_DEPTH) " levels)");
  luaL_checkstack(L, 8, "JSON nesting");
  mode = read_mode(enc, idx);
  enc->ancestors[enc->depth] = self;
  enc->depth++;
  enc->path[enc->depth - 1].key = NULL;
  enc->path[enc->depth - 1].index = 0;
  switch (mode) {
    case READ_MARKED: {
      lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
      check_marked_keys(enc, idx, n);
      encode_array(enc, idx, n, 0);
      break;
    }
    case READ_LEN: {
      lua_Integer n = luaL_len(L, idx);   /* __len; raises if not an integer */
      if (n < 0) {
        enc->depth--;
        encode_error(enc, "%s: %s", "its __len gave a negative length");
      }
      encode_array(enc, idx, n, 1);
      break;
    }
    case READ_PAIRS:
    case READ_CHAIN:
      enc->depth--;   /* an error in the metatable's chain names the table */
      if (mode == READ_PAIRS)
        push_pairs_snapshot(enc, idx);
      else
        push_chain_snapshot(enc, idx);
      enc->depth++;
      encode_raw_table(enc, lua_gettop(L));
      lua_pop(L, 1);
      break;
    default:
      encode_raw_table(enc, idx);
      break;
  }
  enc->depth--;
}

#define SEG_IS(seg, word) ((seg).key != NULL && (seg).len == strlen(word) \
                           && memcmp((seg).key, (word), (seg).len) == 0)

static int seg_in (const path_seg *seg, const char *const *words) {
  int k;
  for (k = 0; words[k] != NULL; k++)
    if (SEG_IS(*seg, words[k]))
      return 1;
  return 0;
}

/*
** Whether the last segment of p[from..n-1], a path inside a JSON Schema
** (p[from] is a key of its root object), is one of the schema's
** list-valued keywords. The path is walked as the schema's grammar reads
** it, so that a property *named* "required" or "enum" (a key of
** `properties`), whose schema may be {}, stays an object.
*/
static int schema_list_keyword (const path_seg *p, int from, int n) {
  static const char *const lists[] = {
    "required", "enum", "anyOf", "oneOf", "allOf", "prefixItems", "examples", NULL
  };
  static const char *const name_maps[] = {   /* name -> schema */
    "properties", "patternProperties", "$defs", "definitions", "dependentSchemas", NULL
  };
  static const char *const schema_lists[] = { "anyOf", "oneOf", "allOf", "prefixItems", NULL };
  static const char *const one_schema[] = {
    "items", "not", "additionalProperties", "contains", "if", "then", "else", "propertyNames",
    "additionalItems", "unevaluatedProperties", "unevaluatedItems", NULL
  };
  enum { SCHEMA, NAMES, LIST } at = SCHEMA;
  int j;
  for (j = from; j < n - 1; j++) {
    if (at == NAMES || at == LIST)   /* a property's name, a list's index: a schema */
      at = SCHEMA;
    else if (p[j].key == NULL)       /* `items` as a list of schemas (older drafts) */
      continue;
    else if (seg_in(&p[j], name_maps))
      at = NAMES;
    else if (seg_in(&p[j], schema_lists))
      at = LIST;
    else if (!seg_in(&p[j], one_schema))
      return 0;   /* a value (enum's, const, default...): data, not schema */
  }
  return at == SCHEMA && seg_in(&p[n - 1], lists);
}

/*
** Whether the value being written (the path's last segment, a key) is,
** in a request's params, a field the API defines as an array: an empty
** table there is written [] (an empty table is {} elsewhere). The
** top-level lists, a message's content parts and tool calls, and the
** list-valued keywords of a JSON Schema (under `parameters` or `schema`).
*/
static int known_array (const encoder *enc) {
  static const char *const top[] = {
    "messages", "stop", "tools", "functions", "input", "modalities", "prompt", "include", NULL
  };
  const path_seg *p = enc->path;
  int n = enc->depth - 1, i;
  if (!enc->request || n < 1 || p[n - 1].key == NULL)
    return 0;
  if (n == 1)
    return seg_in(&p[0], top);
  if (n == 3 && SEG_IS(p[0], "messages") && p[1].key == NULL
      && (SEG_IS(p[2], "content") || SEG_IS(p[2], "tool_calls")))
    return 1;
  for (i = 0; i < n - 1; i++)   /* the first: a property may be named "schema" */
    if (SEG_IS(p[i], "parameters") || SEG_IS(p[i], "schema"))
      return schema_list_keyword(p, i + 1, n);
  return 0;
}
#undef SEG_IS

/*
** Classifies the raw table at idx (its entry on the path already made) and
** writes it. A table is an array when its keys are exactly 1..n (n > 0);
** an object when every key is a string; anything else (mixed keys, holes,
** float or boolean keys) cannot be said in JSON and raises.
*/
static void encode_raw_table (encoder *enc, int idx) {
  lua_State *L = enc->L;
  lua_Integer n;
  int first = 1;

  n = (lua_Integer)lua_rawlen(L, idx);
  if (n > 0) {
    /* Array candidate: the keys must be exactly 1..n. */
    lua_Integer count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
      lua_pop(L, 1);
      if (lua_type(L, -1) == LUA_TNUMBER && lua_isinteger(L, -1)) {
        lua_Integer k = lua_tointeger(L, -1);
        if (k < 1 || k > n) {
          enc->depth--;   /* the error names the table itself */
          encode_error(enc, "%s: %s", "sparse array (integer keys beyond the sequence)");
        }
        count++;
      }
      else {
        enc->depth--;
        encode_error(enc, "%s: %s",
                     "mixed table (both a sequence and other keys); JSON needs an array or an object");
      }
    }
    if (count != n) {
      enc->depth--;
      encode_error(enc, "%s: %s", "sparse array");
    }
    encode_array(enc, idx, n, 0);
    return;
  }

  out_char(enc, '{');
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    size_t klen;
    const char *key;
    if (lua_type(L, -2) != LUA_TSTRING) {
      const char *tname = luaL_typename(L, -2);
      enc->depth--;
      if (lua_type(L, -2) == LUA_TNUMBER)
        encode_error(enc, "%s: %s", "sparse array or mixed keys (JSON arrays are sequences 1..n)");
      lua_pushfstring(L, "object keys must be strings, found a %s key", tname);
      encode_error(enc, "%s: %s", lua_tostring(L, -1));
    }
    key = lua_tolstring(L, -2, &klen);
    if (!first)
      out_char(enc, ',');
    first = 0;
    enc->depth--;            /* a bad key is reported at its table's path */
    encode_string(enc, key, klen);
    enc->depth++;
    push_seg_key(enc, key, klen);
    out_char(enc, ':');
    encode_value(enc, lua_gettop(L));
    lua_pop(L, 1);
  }
  if (first && known_array(enc)) {   /* empty, where the API wants a list: [] */
    enc->out->data[enc->out->len - 1] = '[';
    out_char(enc, ']');
  }
  else
    out_char(enc, '}');
}

static void encode_value (encoder *enc, int idx) {
  lua_State *L = enc->L;
  switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      encode_string(enc, s, len);
      break;
    }
    case LUA_TNUMBER: {
      char num[40];
      int n = 0;
      int64_t i = 0;
      double d = 0;
      int cls = aigc_number_of(L, idx, &i, &d);
      if (cls == AIGC_NUM_INT)
        n = aigc_json_format_int(num, i);
      else if (cls == AIGC_NUM_BIGINT) {
        snprintf(num, sizeof num, fabs(d) < 1e21 ? "%.0f" : "%.17g", d);
        lua_pushfstring(L, "the integer %s is beyond 2^53, where this Lua's numbers (doubles) are "
                        "no longer exact: send it as a string", num);
        encode_error(enc, "%s: %s", lua_tostring(L, -1));
      }
      else {
        if (d != d)
          encode_error(enc, "%s: %s", "cannot encode NaN (JSON has no NaN)");
        if (isinf(d))
          encode_error(enc, "%s: %s", "cannot encode an infinite number (JSON has no infinity)");
        n = format_short_double(num, d);
        if (n == 0)
          n = aigc_json_format_double(num, d);
      }
      out_add(enc, num, (size_t)n);
      break;
    }
    case LUA_TBOOLEAN:
      if (lua_toboolean(L, idx))
        out_add(enc, "true", 4);
      else
        out_add(enc, "false", 5);
      break;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) {
        out_add(enc, "null", 4);
        break;
      }
      encode_error(enc, "%s: %s", "cannot encode a light userdata other than aigc.null");
      break;
    case LUA_TTABLE:
      encode_table(enc, idx);
      break;
    case LUA_TNIL:
      encode_error(enc, "%s: %s", "cannot encode nil (use aigc.null for JSON null)");
      break;
    default: {
      lua_pushfstring(L, "cannot encode a %s", luaL_typename(L, idx));
      encode_error(enc, "%s: %s", lua_tostring(L, -1));
    }
  }
}

/*
** The encoder holds 200-entry arrays (6 KiB), so it lives in a userdata;
** one made per request body was 4% of a request's instructions (the
** allocation and the GC work it drives). One stays in the registry and is
** marked busy while in use (taking it out and putting it back was two
** registry stores a request, ~0.5k instructions). A busy one found there
** (a nested encode, or one that raised half-way and never gave it back)
** is replaced by a new one: the old one stays with its encode, or goes to
** the collector. The new one is made before anything changes (it may
** raise), and replacing a key the registry has allocates nothing.
*/
static const char encoder_key = 'e';

static encoder *take_encoder (lua_State *L) {
  encoder *enc;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &encoder_key) == LUA_TUSERDATA) {
    enc = (encoder *)lua_touserdata(L, -1);
    if (!enc->busy) {
      enc->busy = 1;
      return enc;
    }
  }
  lua_pop(L, 1);
  enc = (encoder *)lua_newuserdatauv(L, sizeof(encoder), 0);
  enc->busy = 1;
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &encoder_key);
  return enc;
}

/* Pops the array metatable (pushed by encoder_init) and the encoder below
   it, which is idle again. */
static void give_back_encoder (lua_State *L, encoder *enc) {
  enc->busy = 0;
  lua_pop(L, 2);
}

static void encoder_init (lua_State *L, encoder *enc, aigc_buf *out,
                          const aigc_argctx *cx, int request) {
  enc->L = L;
  enc->out = out;
  enc->depth = 0;
  enc->what = cx->what;
  enc->fname = cx->fname;
  enc->arg = cx->arg;
  enc->request = request;
  luaL_getmetatable(L, AIGC_ARRAY_MT);
  enc->array_mt = lua_gettop(L);
}

static void encode_root (lua_State *L, int idx, aigc_buf *out, const aigc_argctx *cx) {
  /* The encoder holds 200-entry arrays; keep it off the C stack of
     deep Lua recursions by allocating it in a userdata. */
  encoder *enc;
  idx = lua_absindex(L, idx);
  enc = take_encoder(L);
  encoder_init(L, enc, out, cx, 0);
  encode_value(enc, idx);
  give_back_encoder(L, enc);
}

/*
** Writes the model first: params.model, else its old name `engine`, else
** the client's default; a server with one model may need none at all.
** Returns whether it wrote one.
*/
static int encode_model (encoder *enc, int idx, const char *default_model) {
  lua_State *L = enc->L;
  int written = 0;
  if (lua_getfield(L, idx, "model") == LUA_TNIL) {
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "engine") == LUA_TNIL && default_model != NULL) {
      lua_pop(L, 1);
      lua_pushstring(L, default_model);
    }
  }
  if (!lua_isnil(L, -1)) {
    enc->depth = 1;
    push_seg_key(enc, "model", 5);
    if (lua_type(L, -1) != LUA_TSTRING)
      encode_error(enc, "%s: %s", "the model must be a string");
    out_add(enc, "\"model\":", 8);
    encode_value(enc, lua_gettop(L));
    enc->depth = 0;
    written = 1;
  }
  lua_pop(L, 1);
  return written;
}

/* Whether the params key k[0..len) is left out of the body. */
static int not_sent (const char *k, size_t len, int has_model, int stream) {
  return aigc_is_call_option(k, len)   /* per-call options (util.c) */
         || (len == 6 && memcmp(k, "engine", 6) == 0)   /* the model's old name */
         || (has_model && len == 5 && memcmp(k, "model", 5) == 0)
         || (len == 6 && memcmp(k, "stream", 6) == 0)   /* written by the caller's will */
         || (!stream && len == 14 && memcmp(k, "stream_options", 14) == 0);
}

/* Writes one entry (key, the value on top) of the body's object, at
   depth 1 (a params field) or 2 (an extra_body field). */
static void write_entry (encoder *enc, const char *key, size_t klen, int depth, int *first) {
  if (!*first)
    out_char(enc, ',');
  *first = 0;
  enc->depth = depth - 1;
  encode_string(enc, key, klen);
  enc->depth = depth;
  push_seg_key(enc, key, klen);
  out_char(enc, ':');
  encode_value(enc, lua_gettop(enc->L));
}

/* Whether the table at t (0: none) has the key at k (a negative index). */
static int has_key (lua_State *L, int t, int k) {
  int found;
  if (t == 0)
    return 0;
  lua_pushvalue(L, k);
  lua_rawget(L, t);
  found = !lua_isnil(L, -1);
  lua_pop(L, 1);
  return found;
}

/*
** params.extra_body (at extra): fields sent as they are, over the params'
** own of the same name (as the SDKs' extra_body): a server's field named
** as one of aigc's call options (vLLM's integer `priority`). `model` and
** `stream` stay aigc's: it reads the reply by them. Returns whether it
** has stream_options.
*/
static int encode_extra (encoder *enc, int extra, int *first) {
  lua_State *L = enc->L;
  int has_stream_options = 0;
  enc->depth = 1;
  push_seg_key(enc, "extra_body", 10);
  enc->ancestors[1] = lua_topointer(L, extra);
  lua_pushnil(L);
  while (lua_next(L, extra) != 0) {
    size_t klen = 0;
    const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &klen) : NULL;
    enc->depth = 1;
    if (key == NULL)
      encode_error(enc, "%s: %s", "keys must be strings");
    if ((klen == 5 && memcmp(key, "model", 5) == 0) || (klen == 6 && memcmp(key, "stream", 6) == 0)) {
      enc->depth = 2;
      push_seg_key(enc, key, klen);
      encode_error(enc, "%s: %s", "aigc's own field: set it in the params");
    }
    has_stream_options |= klen == 14 && memcmp(key, "stream_options", 14) == 0;
    write_entry(enc, key, klen, 2, first);
    lua_pop(L, 1);
  }
  return has_stream_options;
}

/*
** Writes the entries of the params table at idx after the model (`first`:
** nothing written yet), then those of extra_body (at extra, 0: none);
** returns whether the body has stream_options.
*/
static int encode_entries (encoder *enc, int idx, int first, int has_model, int stream, int extra) {
  lua_State *L = enc->L;
  int has_stream_options = 0;
  enc->depth = 1;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    size_t klen;
    const char *key;
    if (lua_type(L, -2) != LUA_TSTRING) {
      enc->depth = 0;
      lua_pushfstring(L, "keys must be strings, found a %s key", luaL_typename(L, -2));
      encode_error(enc, "%s: %s", lua_tostring(L, -1));
    }
    key = lua_tolstring(L, -2, &klen);
    if (klen == 14 && memcmp(key, "stream_options", 14) == 0)
      has_stream_options = 1;
    /* (a field extra_body sends too is sent once, as extra_body has it) */
    if (not_sent(key, klen, has_model, stream) || has_key(L, extra, -2)) {
      lua_pop(L, 1);
      continue;
    }
    write_entry(enc, key, klen, 1, &first);
    lua_pop(L, 1);
  }
  if (extra != 0)
    has_stream_options |= encode_extra(enc, extra, &first);
  if (stream) {
    if (!first)
      out_char(enc, ',');
    out_add(enc, "\"stream\":true", 13);
  }
  return has_stream_options;
}

#define PARAMS_ROOM 256

int aigc_jsonlua_encode_params (lua_State *L, int idx, aigc_buf *out, const char *default_model,
                                int stream, int usage, const aigc_argctx *cx) {
  encoder *enc;
  int has_model, mode, default_so = 0, extra = 0;
  const void *self;
  idx = lua_absindex(L, idx);
  /* Room for a typical body at once (a chat call's is ~200 bytes): grown
     from the buffer's first 64 bytes it was two reallocs per request. */
  if (out->cap < PARAMS_ROOM && aigc_buf_reserve(out, PARAMS_ROOM - 1 - out->len) != 0)
    luaL_error(L, "not enough memory");
  enc = take_encoder(L);
  encoder_init(L, enc, out, cx, 1);
  /* The params table itself obeys the metatable rules (an object: __len
     says nothing here); with __pairs or an __index chain, its entries are
     read from a snapshot, popped at the end. */
  self = lua_topointer(L, idx);
  mode = read_mode(enc, idx);
  if (mode == READ_PAIRS || mode == READ_CHAIN) {
    if (mode == READ_PAIRS)
      push_pairs_snapshot(enc, idx);
    else
      push_chain_snapshot(enc, idx);
    idx = lua_gettop(L);
  }
  out_char(enc, '{');
  has_model = encode_model(enc, idx, default_model);
  enc->ancestors[0] = self;
  if (lua_getfield(L, idx, "extra_body") == LUA_TTABLE && !lua_getmetatable(L, -1))
    extra = lua_gettop(L);   /* (read raw, as the cache's key and a batch line read it) */
  else if (!lua_isnil(L, -1)) {
    enc->depth = 1;
    push_seg_key(enc, "extra_body", 10);
    encode_error(enc, "%s: %s", "a plain table (no metatable) expected");
  }
  /* Usage arrives in one last chunk only when asked for; the caller may
     override (or send null for servers that reject the field). */
  if (!encode_entries(enc, idx, !has_model, has_model, stream, extra) && stream && usage) {
    out_add(enc, ",\"stream_options\":{\"include_usage\":true}", AIGC_JSONLUA_STREAM_OPTIONS_LEN);
    default_so = 1;
  }
  out_char(enc, '}');
  lua_pop(L, 1);   /* extra_body or nil */
  if (mode == READ_PAIRS || mode == READ_CHAIN)
    lua_pop(L, 1);   /* the snapshot */
  give_back_encoder(L, enc);
  return default_so;
}

/* }====================================================== */


/*
** {======================================================
** Decoding
** =======================================================
*/

/*
** The strings replies are made of. Making a key a Lua string hashes its
** bytes and looks them up in Lua's string table (~250 instructions on
** Lua 5.4, some 30 times per chat reply); these are made Lua strings once
** per Lua state, kept in a registry table, and pushed with lua_rawgeti.
** The keys of chat completions, their chunks and usage, tool calls,
** logprobs, embeddings and the Responses API, and their common values.
** Order does not matter; at most 255 of them, each at most KNOWN_MAX_LEN
** bytes (a short string on every Lua).
*/
static const char *const known_strings[] = {
  /* chat completions and their chunks */
  "id", "object", "created", "model", "choices", "index", "message", "role", "content",
  "refusal", "annotations", "logprobs", "finish_reason", "system_fingerprint",
  "service_tier", "delta", "tool_calls", "type", "function", "name", "arguments",
  "audio", "reasoning_content", "url_citation", "url", "title",
  "start_index", "end_index",
  /* usage */
  "usage", "prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details",
  "cached_tokens", "audio_tokens", "completion_tokens_details", "reasoning_tokens",
  "accepted_prediction_tokens", "rejected_prediction_tokens",
  "input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details",
  /* logprobs, embeddings, completions */
  "token", "bytes", "top_logprobs", "logprob", "data", "embedding", "text",
  /* the Responses API */
  "status", "output", "created_at", "error", "incomplete_details", "instructions",
  "metadata", "parallel_tool_calls", "temperature", "top_p", "tool_choice", "tools",
  "truncation", "user", "reasoning", "summary", "previous_response_id",
  "max_output_tokens", "call_id", "format", "effort", "store",
  /* values */
  "assistant", "system", "tool", "stop", "length", "content_filter", "chat.completion",
  "chat.completion.chunk", "list", "text_completion", "response", "output_text",
  "completed", "default", "auto", "in_progress", "disabled",
};

#define KNOWN_COUNT ((int)(sizeof known_strings / sizeof known_strings[0]))
#define KNOWN_MAX_LEN 26
#define KNOWN_SLOTS 256   /* a power of two, over twice KNOWN_COUNT */

/* Where a string's search starts in known_index.slot. */
static unsigned known_hash (const char *s, size_t len) {
  return ((unsigned)len * 31u + (unsigned char)s[0] * 7u + (unsigned char)s[len - 1] * 3u
          + (unsigned char)s[len / 2]) & (KNOWN_SLOTS - 1);
}

/* (an index fits a slot's byte, and the slots stay under half full) */
typedef char known_strings_fit[KNOWN_COUNT < 256 && 2 * KNOWN_COUNT <= KNOWN_SLOTS ? 1 : -1];

/* Open addressing over known_strings: slot[h] is an index + 1, 0 empty. */
typedef struct known_index {
  unsigned char slot[KNOWN_SLOTS];
  unsigned char len[KNOWN_COUNT];
} known_index;

static const char known_key = 'k';

/*
** Pushes the registry's table of known strings (at 1..KNOWN_COUNT, the
** index userdata at KNOWN_COUNT + 1), made by aigc_jsonlua_open (or here,
** should it be missing), and returns the index. Both stay pinned by the
** table on the stack while a reply is made, whatever a finalizer run by
** its allocations does.
*/
static const known_index *push_known (lua_State *L) {
  known_index *ix;
  int i;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &known_key) == LUA_TTABLE) {
    lua_rawgeti(L, -1, KNOWN_COUNT + 1);
    ix = lua_rawlen(L, -1) == sizeof *ix ? (known_index *)lua_touserdata(L, -1) : NULL;
    lua_pop(L, 1);
    if (ix != NULL)
      return ix;
  }
  lua_pop(L, 1);   /* missing, or changed through debug.getregistry: made again */
  lua_createtable(L, KNOWN_COUNT + 1, 0);
  ix = (known_index *)lua_newuserdatauv(L, sizeof *ix, 0);
  memset(ix, 0, sizeof *ix);
  lua_rawseti(L, -2, KNOWN_COUNT + 1);
  for (i = 0; i < KNOWN_COUNT; i++) {
    size_t len = strlen(known_strings[i]);
    unsigned h = known_hash(known_strings[i], len);
    while (ix->slot[h] != 0)
      h = (h + 1) & (KNOWN_SLOTS - 1);
    ix->slot[h] = (unsigned char)(i + 1);
    ix->len[i] = (unsigned char)len;
    lua_pushlstring(L, known_strings[i], len);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &known_key);
  return ix;
}

void aigc_jsonlua_open (lua_State *L) {
  push_known(L);
  lua_pop(L, 1);
}

/* What a push needs besides the value: stack indexes and the index. */
typedef struct push_ctx {
  int array_mt;                 /* the aigc.array metatable */
  int known;                    /* the table of known strings */
  const known_index *ix;
  const aigc_json_value *keep;  /* a string whose Lua value is also put at slot `kept`, or NULL */
  int kept;
} push_ctx;

/* Pushes s[0..len): the known string from the table, or a new one. */
static void push_string (lua_State *L, const push_ctx *c, const char *s, size_t len) {
  if (len >= 2 && len <= KNOWN_MAX_LEN) {
    unsigned h = known_hash(s, len);
    int i;
    while ((i = c->ix->slot[h]) != 0) {
      if (c->ix->len[i - 1] == len && memcmp(known_strings[i - 1], s, len) == 0) {
        (lua_rawgeti)(L, c->known, i);   /* (not compat-5.3's macro: no lua_type after it) */
        return;
      }
      h = (h + 1) & (KNOWN_SLOTS - 1);
    }
  }
  lua_pushlstring(L, s, len);
}

/*
** A container at `depth` needs at most 3 slots above its parent's (its
** table, a key, a value), so the stack is grown once every NEST_STEP
** levels, not once per container (ci->top keeps what was asked for the
** C call's life: a GC's shrink leaves it).
*/
#define NEST_STEP 16
#define NEST_ROOM(L, depth) \
  do { if ((depth) % NEST_STEP == 0) luaL_checkstack((L), 3 * NEST_STEP, "JSON nesting"); } while (0)

/* `extra`: more hash slots for the object itself (not its members). */
static void push_value (lua_State *L, const aigc_json_value *v, const push_ctx *c, int extra, int depth) {
  size_t i;
  switch (v->type) {
    case AIGC_JSON_NULL: lua_pushlightuserdata(L, NULL); break;
    case AIGC_JSON_FALSE: lua_pushboolean(L, 0); break;
    case AIGC_JSON_TRUE: lua_pushboolean(L, 1); break;
    case AIGC_JSON_INT: aigc_push_int64(L, v->u.i); break;
    case AIGC_JSON_FLOAT: lua_pushnumber(L, (lua_Number)v->u.d); break;
    case AIGC_JSON_STRING:
      push_string(L, c, v->u.s, v->len);
      if (v == c->keep) {
        lua_pushvalue(L, -1);
        lua_replace(L, c->kept);
      }
      break;
    case AIGC_JSON_ARRAY:
      NEST_ROOM(L, depth);
      lua_createtable(L, v->len > INT32_MAX ? INT32_MAX : (int)v->len, 0);
      for (i = 0; i < v->len; i++) {
        push_value(L, &v->u.items[i], c, 0, depth + 1);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
      }
      lua_pushvalue(L, c->array_mt);
      lua_setmetatable(L, -2);
      break;
    case AIGC_JSON_OBJECT:
      NEST_ROOM(L, depth);
      lua_createtable(L, 0, v->len > (size_t)(INT32_MAX - extra) ? INT32_MAX : (int)v->len + extra);
      for (i = 0; i < v->len; i++) {
        const aigc_json_member *m = &v->u.members[i];
        push_string(L, c, m->key, m->key_len);
        push_value(L, &m->value, c, 0, depth + 1);
        lua_rawset(L, -3);
      }
      break;
  }
}

void aigc_jsonlua_push_keep (lua_State *L, const aigc_json_value *v, int extra,
                             const aigc_json_value *keep) {
  push_ctx c;
  luaL_getmetatable(L, AIGC_ARRAY_MT);
  c.array_mt = lua_gettop(L);
  c.ix = push_known(L);
  c.known = lua_gettop(L);
  c.keep = keep;
  lua_pushnil(L);
  c.kept = lua_gettop(L);
  push_value(L, v, &c, extra, 0);
  lua_replace(L, c.array_mt);   /* the value, then what was kept */
  lua_replace(L, c.known);
  lua_settop(L, c.known);
}

void aigc_jsonlua_push_room (lua_State *L, const aigc_json_value *v, int extra) {
  aigc_jsonlua_push_keep(L, v, extra, NULL);
  lua_pop(L, 1);
}

void aigc_jsonlua_push (lua_State *L, const aigc_json_value *v) {
  aigc_jsonlua_push_room(L, v, 0);
}

/* A buffer or arena boxed in a userdata so that errors cannot leak it. */
typedef struct json_box {
  aigc_buf buf;
  aigc_json_arena arena;
} json_box;

static int box_gc (lua_State *L) {
  json_box *box = (json_box *)lua_touserdata(L, 1);
  aigc_buf_free(&box->buf);
  aigc_json_arena_free(&box->arena);
  return 0;
}

static json_box *new_box (lua_State *L) {
  json_box *box = (json_box *)lua_newuserdatauv(L, sizeof *box, 0);
  memset(box, 0, sizeof *box);
  aigc_json_arena_init(&box->arena);
  box->arena.limits.lua_hash = aigc_lua_samples_long_strings();
  aigc_push_box_mt(L, "aigc.jsonbox", box_gc);
  lua_setmetatable(L, -2);
  return box;
}

/*
** aigc.json.decode(text) -> value | fail, message
** Malformed text is a failure of the data, not misuse: it returns nil and
** a message with the byte offset.
*/
int aigc_jsonlua_decode (lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  json_box *box = new_box(L);
  aigc_json_value v;
  aigc_json_error err;
  int rc = aigc_json_parse(&box->arena, text, len, AIGC_JSON_DEFAULT_MAX_DEPTH, &v, &err);
  if (rc == -2) {
    aigc_json_arena_free(&box->arena);
    return luaL_error(L, "not enough memory");
  }
  if (rc != 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "invalid JSON at byte %d: %s", (int)err.offset + 1, err.message);   /* (from 1) */
    aigc_json_arena_free(&box->arena);
    return 2;
  }
  aigc_jsonlua_push(L, &v);
  aigc_json_arena_free(&box->arena);   /* (see aigc_jsonlua_encodefn) */
  return 1;
}

/* aigc.json.encode(value) -> string; raises naming the path of a bad value. */
int aigc_jsonlua_encodefn (lua_State *L) {
  static const aigc_argctx cx = { "encode", 1, "value" };
  json_box *box;
  luaL_checkany(L, 1);
  box = new_box(L);
  encode_root(L, 1, &box->buf, &cx);
  lua_pushlstring(L, box->buf.data ? box->buf.data : "", box->buf.len);
  /* Freed now, not by the box's __gc: a finalizer that encodes while
     lua_close runs finalizers (a prompt log's last rows) makes a box that
     Lua registers no __gc for (5.4 and 5.1-5.3 register none then), and its
     buffer leaked. (The box's __gc stays for a raise mid-encode.) */
  aigc_buf_free(&box->buf);
  return 1;
}

/* }====================================================== */
