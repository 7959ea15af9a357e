/*
** json.h — JSON in plain C (no Lua): a strict parser that builds an
** immutable tree in an arena, a writer, and the pieces the Lua encoder
** shares (string escaping, number formatting).
**
** Why not lua-cjson alone: under Lua 5.4, Debian's lua-cjson 2.1.0 turns
** every number into a float (1 -> 1.0, 9007199254740993 -> 9.007199254741e+15)
** and has no empty-array marker, no error paths and no depth-safe parse into
** a form C can inspect. Parsing into a C tree first also means a hostile body
** is fully validated before a single Lua object is created, and the stream
** accumulator (accum.h) can work without touching Lua.
**
** Strictness (RFC 8259): one value, surrounded only by JSON whitespace; no
** trailing commas, comments, NaN/Infinity, leading zeros, or control
** characters in strings; strings must be valid UTF-8 (no overlongs, no
** surrogates encoded in UTF-8, nothing above U+10FFFF). "\u" escapes are
** decoded to UTF-8, surrogate pairs combined; a lone surrogate escape becomes
** U+FFFD (it is valid JSON syntax but has no UTF-8 form). Numbers without a
** fraction or exponent that fit in int64 are AIGC_JSON_INT; every other
** number is AIGC_JSON_FLOAT; a number whose magnitude overflows a double
** (1e400) is an error. Objects keep members in document order; duplicate
** keys are kept (the Lua bridge lets the last one win, as most decoders do).
**
** Numbers in Lua (jsonlua.c, compat.h). The tree keeps every integer exact
** in 64 bits; what Lua makes of it depends on the version:
**   - Lua 5.3 and 5.4: an AIGC_JSON_INT becomes a Lua integer, exact; a Lua
**     integer is written as one, a float as a float (2^53 + 2 as a float is
**     written 9007199254740994.0);
**   - Lua 5.1, 5.2 and LuaJIT, where every number is a double: integers are
**     exact up to +-2^53 (9007199254740992). A reply's integer beyond that
**     becomes the nearest double (9007199254740993 reads as
**     9007199254740992: the loss is documented, not an error: no API field
**     aigc reads is that large). A Lua number sent that is integer-valued
**     and beyond +-2^53 (a seed of 2^60, 1e300) raises "the integer ... is
**     beyond 2^53, ...: send it as a string", naming its path: it may
**     already be a rounded value, and sending it would round silently.
**     Integer-valued numbers within +-2^53 are written without a fraction
**     ("128"), others as floats.
*/
#ifndef AIGC_JSON_H
#define AIGC_JSON_H

#include <locale.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef enum aigc_json_type {
  AIGC_JSON_NULL, AIGC_JSON_FALSE, AIGC_JSON_TRUE, AIGC_JSON_INT, AIGC_JSON_FLOAT, AIGC_JSON_STRING, AIGC_JSON_ARRAY, AIGC_JSON_OBJECT
} aigc_json_type;

typedef struct aigc_json_member aigc_json_member;
typedef struct aigc_json_value aigc_json_value;

struct aigc_json_value {
  aigc_json_type type;
  size_t len;        /* string bytes, array items or object members */
  size_t cap;        /* owned trees (aigc_json_copy, the accumulator): allocated
                        capacity of u.s (in bytes, counting the NUL; an owned
                        string always has one) / u.items / u.members (in
                        elements), every pointer malloc'ed or NULL; arena
                        trees: always 0 */
  union {
    int64_t i;       /* AIGC_JSON_INT */
    double d;        /* AIGC_JSON_FLOAT */
    char *s;         /* AIGC_JSON_STRING: NUL-terminated, may contain NULs */
    aigc_json_value *items; /* AIGC_JSON_ARRAY */
    aigc_json_member *members; /* AIGC_JSON_OBJECT */
  } u;
};

struct aigc_json_member {
  char *key;         /* NUL-terminated, may contain NULs */
  size_t key_len;
  aigc_json_value value;
};

/*
** How much one document may build. The bytes of a reply are bounded by the
** caller (max_response_bytes); the values are not, and they are what costs:
** `[],[],[]...` is 3 bytes per value in the text and over a hundred once it
** is a tree and then Lua tables (a 63 MB reply of them peaked at 2.3 GB).
** So a parse counts its values and stops at these bounds. A zero field
** means the default.
**
**   max_values      values of every kind, containers and scalars alike
**                   (an object member counts once, for its value; keys are
**                   not counted: a key cannot come without its value)
**   max_containers  arrays and objects, the costliest values
**
** The defaults let the largest legitimate replies through with room: an
** embeddings batch of 2048 inputs at 3072 dimensions is 6.3 M values (and
** ~80 MB of text, over the default max_response_bytes anyway); a 16k-token
** chat reply with logprobs and top_logprobs = 20 is about 0.7 M containers.
**
** Memory bound. Parsing a document of V values, C of them containers,
** peaks at about 80 bytes a value: the tree keeps 32 (48 for an object
** member, plus its key's text), and while a container is open its
** children also sit on the scratch stack (48 bytes each, freed when the
** parse ends). Strings add their text once more, rounded up to 8 bytes.
** aigc then makes the tree into Lua tables (Lua 5.4: 16 bytes a value in
** an array, about 32 in an object, 64 a container, ~25 + its length a
** distinct string) while the tree is still there. In all, a reply within
** the limits costs at most about 80 V + 40 C bytes plus twice its string
** text: 36 to 40 times its size for the densest documents (`[0,0,...]`,
** `[[],[],...]`), 4 to 6 times for text-heavy ones. At the default
** limits the worst case measured is 633 MiB (8 M zeros, a 17 MB reply;
** bench/json_flood.lua); a stream's accumulated result holds its tree
** twice (it is shaped into a copy). Lower the limits to bound it further.
*/
typedef struct aigc_json_limits {
  size_t max_values;
  size_t max_containers;
  int lua_hash;     /* refuse objects whose keys flood Lua 5.1-5.3's string hash (json.c) */
} aigc_json_limits;

#define AIGC_JSON_DEFAULT_MAX_VALUES     ((size_t)1 << 23)   /* 8,388,608 */
#define AIGC_JSON_DEFAULT_MAX_CONTAINERS ((size_t)1 << 20)   /* 1,048,576 */

/*
** An arena: a chain of blocks, freed all at once. A parse allocates its whole
** tree here; aigc_json_arena_reset keeps one block for reuse (a chain left by a big
** document is merged into one block of its total size, up to 1 MiB; beyond
** that everything is released) so parsing one SSE chunk after another
** allocates nothing in the steady state.
**
** The arena also carries the limits of what one parse into it may build
** (`limits`, zero fields: the defaults): the owner of the memory sets its
** budget once, and every parse into that arena (a reply, an error body, each
** stream event) obeys it. aigc_json_arena_init sets the defaults; reset and free
** keep the limits.
*/
typedef struct aigc_json_block aigc_json_block;
typedef struct aigc_json_arena {
  aigc_json_block *head;
  size_t used;       /* bytes used in head */
  aigc_json_limits limits;  /* per parse; zero fields: AIGC_JSON_DEFAULT_MAX_* */
} aigc_json_arena;

void aigc_json_arena_init (aigc_json_arena *a);
void aigc_json_arena_reset (aigc_json_arena *a);
void aigc_json_arena_free (aigc_json_arena *a);
/* Moves from's newest block (its largest), emptied, into to when to has no
   block and it holds at most max bytes; from's older blocks are freed, and
   from is left empty. Returns 1 if moved; else changes nothing. Limits stay
   with each arena. (A block kept between parses by another owner.) */
int  aigc_json_arena_move_block (aigc_json_arena *to, aigc_json_arena *from, size_t max);

/* The effective limits of l (zero fields replaced by the defaults). */
aigc_json_limits aigc_json_limits_of (const aigc_json_limits *l);

typedef struct aigc_json_error {
  size_t offset;     /* byte offset in the input where parsing stopped */
  char message[96];  /* e.g. "unexpected character 'x'", "nesting deeper than 200" */
} aigc_json_error;

/* The nesting a reply (or aigc.json.decode) may have. The encoder takes
   a few levels more (jsonlua.c), so that whatever was decoded can be sent
   again: with 512 here and 200 there, a reply 201 to 512 levels deep
   decoded, and a conversation that kept its tool calls could never send
   its history again. */
#define AIGC_JSON_DEFAULT_MAX_DEPTH 200

/* Lua 5.1-5.3's hash flood (json.c), in a tree not parsed with
   limits.lua_hash: 1 and *what (a static text) when v holds one, 0 when
   not, -1 out of memory. */
int aigc_json_flood (const aigc_json_value *v, const char **what);

/* What aigc_json_parse returns. */
enum {
  AIGC_JSON_OK = 0,
  AIGC_JSON_ESYNTAX = -1,   /* syntax, UTF-8, number range or nesting depth */
  AIGC_JSON_ENOMEM = -2,
  AIGC_JSON_ELIMIT = -3     /* more values or containers than the arena's limits */
};

/*
** Parses text[0..len) into *out (tree memory from the arena).
** Returns AIGC_JSON_OK (0) on success; AIGC_JSON_ESYNTAX (-1) on a syntax, UTF-8, range
** or depth error; AIGC_JSON_ENOMEM (-2) when memory ran out; AIGC_JSON_ELIMIT (-3) at the
** first value past a->limits ("more than N values" / "more than N arrays
** and objects"), before that value costs anything. err is filled in on
** every failure. Never reads past len; text need not be NUL-terminated.
** Uses no recursion at all (an explicit stack bounded by max_depth);
** max_depth <= 0 means AIGC_JSON_DEFAULT_MAX_DEPTH. On failure *out is AIGC_JSON_NULL.
*/
int aigc_json_parse (aigc_json_arena *a, const char *text, size_t len, int max_depth,
              aigc_json_value *out, aigc_json_error *err);

/* Object member lookup (last match wins); NULL if absent or not an object. */
const aigc_json_value *aigc_json_get (const aigc_json_value *obj, const char *key);

/* The string's bytes if v is an AIGC_JSON_STRING, else NULL. */
const char *aigc_json_str (const aigc_json_value *v, size_t *len);

/*
** Writes v as compact JSON (no spaces) appended to out.
** 0 on success, -1 on ENOMEM (out then as it was). Strings are written with
** aigc_json_write_string; only a hand-built tree can hold a string that is not
** valid UTF-8, and its bad bytes are written as U+FFFD; a non-finite
** AIGC_JSON_FLOAT is written as null. aigc_json_write, aigc_json_copy and aigc_json_free recurse once
** per level of the tree (at most max_depth for a parsed tree).
*/
int aigc_json_write (aigc_buf *out, const aigc_json_value *v);

/*
** Appends s[0..len) as a quoted JSON string: escapes '"', '\\' and control
** characters (\b \f \n \r \t, others as \u00XX); writes U+2028/U+2029 as-is;
** everything else is copied byte for byte.
** Returns 0, -1 on ENOMEM, or -2 if s is not valid UTF-8 (then *bad_offset,
** if not NULL, is the offset of the first bad byte and nothing is appended).
*/
int aigc_json_write_string (aigc_buf *out, const char *s, size_t len,
                     size_t *bad_offset);

/* Nonzero if s[0..len) is valid UTF-8 (the same rules as the parser). */
int aigc_json_utf8_valid (const char *s, size_t len, size_t *bad_offset);

/*
** Formats a finite double as the shortest decimal that reads back to the
** same value ("%.15g", then 16, then 17 digits), always with a '.' or an
** exponent so it reads back as a float: 2.0 -> "2.0", 0.7 -> "0.7",
** 1e300 -> "1e+300". buf needs 32 bytes. Returns the length written.
** The caller rejects NaN and infinities before calling.
*/
int aigc_json_format_double (char *buf, double d);

/*
** A locale whose LC_NUMERIC is "C", made once per process (newlocale under
** pthread_once), or (locale_t)0 if it could not be made. The reader and
** the writer switch the calling thread to it (uselocale) around strtod and
** snprintf: another thread of the host may call setlocale at any time, and
** a number read or written must not depend on it.
*/
locale_t aigc_json_c_locale (void);

/* Formats an int64 in decimal; buf needs 21 bytes. Returns the length. */
int aigc_json_format_int (char *buf, int64_t i);

/*
** Eight bytes at a time (the parser's strings, aigc_json_write_string):
** nonzero when any byte of w (read in memory order) is '"', '\\', below
** 0x20 or at least 0x80 — any byte that is not plain ASCII to copy. The
** borrow tricks can also flag a byte above a flagged one, never a byte
** when none is, which is all a "stop here and look byte by byte" test
** needs; the lowest flagged byte is always exact.
*/
#define AIGC_JSON_ONES          UINT64_C(0x0101010101010101)
#define AIGC_JSON_HIGHS         UINT64_C(0x8080808080808080)
#define AIGC_JSON_HAS_ZERO(x)   (((x) - AIGC_JSON_ONES) & ~(x) & AIGC_JSON_HIGHS)
#define AIGC_JSON_STR_SPECIAL(w) \
  ((((w) - AIGC_JSON_ONES * 0x20) | AIGC_JSON_HAS_ZERO((w) ^ (AIGC_JSON_ONES * '"')) | \
    AIGC_JSON_HAS_ZERO((w) ^ (AIGC_JSON_ONES * '\\')) | (w)) & AIGC_JSON_HIGHS)

/*
** Owned (malloc'ed) trees, as built by the accumulator: deep copy and free.
** aigc_json_copy returns 0 or -1 on ENOMEM (then *dst is AIGC_JSON_NULL and nothing leaks).
** Never call aigc_json_free on an arena tree.
*/
int aigc_json_copy (aigc_json_value *dst, const aigc_json_value *src);
void aigc_json_free (aigc_json_value *v);   /* frees an owned tree; leaves v as AIGC_JSON_NULL */

#endif
