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
** fraction or exponent that fit in int64 are AJ_INT; every other number is
** AJ_FLOAT; a number whose magnitude overflows a double (1e400) is an error.
** Objects keep members in document order; duplicate keys are kept (the Lua
** bridge lets the last one win, as most decoders do).
*/
#ifndef AIGC_JSON_H
#define AIGC_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef enum aj_type {
  AJ_NULL, AJ_FALSE, AJ_TRUE, AJ_INT, AJ_FLOAT, AJ_STRING, AJ_ARRAY, AJ_OBJECT
} aj_type;

typedef struct aj_member aj_member;
typedef struct aj_value aj_value;

struct aj_value {
  aj_type type;
  size_t len;        /* string bytes, array items or object members */
  size_t cap;        /* owned trees (aj_copy, the accumulator): allocated
                        capacity of u.s (in bytes, counting the NUL; an owned
                        string always has one) / u.items / u.members (in
                        elements), every pointer malloc'ed or NULL; arena
                        trees: always 0 */
  union {
    int64_t i;       /* AJ_INT */
    double d;        /* AJ_FLOAT */
    char *s;         /* AJ_STRING: NUL-terminated, may contain NULs */
    aj_value *items; /* AJ_ARRAY */
    aj_member *members; /* AJ_OBJECT */
  } u;
};

struct aj_member {
  char *key;         /* NUL-terminated, may contain NULs */
  size_t key_len;
  aj_value value;
};

/*
** An arena: a chain of blocks, freed all at once. A parse allocates its whole
** tree here; aj_arena_reset keeps one block for reuse (a chain left by a big
** document is merged into one block of its total size, up to 1 MiB; beyond
** that everything is released) so parsing one SSE chunk after another
** allocates nothing in the steady state.
*/
typedef struct aj_block aj_block;
typedef struct aj_arena {
  aj_block *head;
  size_t used;       /* bytes used in head */
} aj_arena;

void aj_arena_init (aj_arena *a);
void aj_arena_reset (aj_arena *a);
void aj_arena_free (aj_arena *a);

typedef struct aj_error {
  size_t offset;     /* byte offset in the input where parsing stopped */
  char message[96];  /* e.g. "unexpected character 'x'", "nesting deeper than 512" */
} aj_error;

#define AJ_DEFAULT_MAX_DEPTH 512

/*
** Parses text[0..len) into *out (tree memory from the arena).
** Returns 0 on success; -1 on a syntax, UTF-8, range or depth error
** (err filled in); -2 when memory ran out. Never reads past len; text need
** not be NUL-terminated. Uses no recursion at all (an explicit stack bounded
** by max_depth); max_depth <= 0 means AJ_DEFAULT_MAX_DEPTH. On failure *out
** is AJ_NULL.
*/
int aj_parse (aj_arena *a, const char *text, size_t len, int max_depth,
              aj_value *out, aj_error *err);

/* Object member lookup (last match wins); NULL if absent or not an object. */
const aj_value *aj_get (const aj_value *obj, const char *key);

/* The string's bytes if v is an AJ_STRING, else NULL. */
const char *aj_str (const aj_value *v, size_t *len);

/*
** Writes v as compact JSON (no spaces) appended to out.
** 0 on success, -1 on ENOMEM (out then as it was). Strings are written with
** aj_write_string; only a hand-built tree can hold a string that is not
** valid UTF-8, and its bad bytes are written as U+FFFD; a non-finite
** AJ_FLOAT is written as null. aj_write, aj_copy and aj_free recurse once
** per level of the tree (at most max_depth for a parsed tree).
*/
int aj_write (aigc_buf *out, const aj_value *v);

/*
** Appends s[0..len) as a quoted JSON string: escapes '"', '\\' and control
** characters (\b \f \n \r \t, others as \u00XX); writes U+2028/U+2029 as-is;
** everything else is copied byte for byte.
** Returns 0, -1 on ENOMEM, or -2 if s is not valid UTF-8 (then *bad_offset,
** if not NULL, is the offset of the first bad byte and nothing is appended).
*/
int aj_write_string (aigc_buf *out, const char *s, size_t len,
                     size_t *bad_offset);

/* Nonzero if s[0..len) is valid UTF-8 (the same rules as the parser). */
int aj_utf8_valid (const char *s, size_t len, size_t *bad_offset);

/*
** Formats a finite double as the shortest decimal that reads back to the
** same value ("%.15g", then 16, then 17 digits), always with a '.' or an
** exponent so it reads back as a float: 2.0 -> "2.0", 0.7 -> "0.7",
** 1e300 -> "1e+300". buf needs 32 bytes. Returns the length written.
** The caller rejects NaN and infinities before calling.
*/
int aj_format_double (char *buf, double d);

/* Formats an int64 in decimal; buf needs 21 bytes. Returns the length. */
int aj_format_int (char *buf, int64_t i);

/*
** Owned (malloc'ed) trees, as built by the accumulator: deep copy and free.
** aj_copy returns 0 or -1 on ENOMEM (then *dst is AJ_NULL and nothing leaks).
** Never call aj_free on an arena tree.
*/
int aj_copy (aj_value *dst, const aj_value *src);
void aj_free (aj_value *v);   /* frees an owned tree; leaves v as AJ_NULL */

#endif
