/*
** json.c — see json.h.
**
** The parser is a loop over an explicit stack of open containers, so the C
** stack stays flat however deep the input nests; max_depth bounds that
** explicit stack. Children of an open container are collected on a scratch
** stack (a few KiB on the C stack, spilling to the heap for big documents)
** and copied into contiguous arena memory when the container closes, so the
** arena only ever receives final, exactly sized arrays.
*/
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "utf8.h"


/* {====================================================================
** Arena
** ===================================================================== */

struct aigc_json_block {
  aigc_json_block *prev;    /* the block filled before this one */
  size_t size;       /* usable bytes after the header */
};

#define AIGC_JSON_ALIGN       ((size_t)8)
#define ALIGN_UP(n)    (((n) + (AIGC_JSON_ALIGN - 1)) & ~(AIGC_JSON_ALIGN - 1))
#define BLOCK_HEADER   ALIGN_UP(sizeof(aigc_json_block))
#define BLOCK_DATA(b)  ((char *)(b) + BLOCK_HEADER)
#define BLOCK_MIN      ((size_t)4096)
/* aigc_json_arena_reset keeps a block only up to this size, so one huge document
** does not pin its memory for the life of the arena */
#define BLOCK_KEEP_MAX ((size_t)1 << 20)

void aigc_json_arena_init (aigc_json_arena *a) {
  a->head = NULL;
  a->used = 0;
  a->limits.max_values = 0;
  a->limits.max_containers = 0;
  a->limits.lua_hash = 0;
}

aigc_json_limits aigc_json_limits_of (const aigc_json_limits *l) {
  aigc_json_limits r;
  r.max_values = (l != NULL && l->max_values > 0) ? l->max_values
                                                  : AIGC_JSON_DEFAULT_MAX_VALUES;
  r.max_containers = (l != NULL && l->max_containers > 0)
                     ? l->max_containers : AIGC_JSON_DEFAULT_MAX_CONTAINERS;
  r.lua_hash = l != NULL ? l->lua_hash : 0;
  return r;
}

/* Frees b and every block before it. */
static void free_chain (aigc_json_block *b) {
  while (b != NULL) {
    aigc_json_block *older = b->prev;
    free(b);
    b = older;
  }
}

/*
** Keeps the memory for the next parse: one block, freed of its contents.
** If the last parse needed a chain of blocks, they are replaced by one
** block as big as the whole chain, so repeating a parse of that size
** allocates nothing. Past BLOCK_KEEP_MAX everything is released.
*/
void aigc_json_arena_reset (aigc_json_arena *a) {
  aigc_json_block *b = a->head, *merged = NULL;
  size_t total = 0;
  if (b == NULL)
    return;
  if (b->prev != NULL) {
    for (; b != NULL && total <= BLOCK_KEEP_MAX; b = b->prev)
      total += b->size;
    if (total <= BLOCK_KEEP_MAX &&
        (merged = (aigc_json_block *)malloc(BLOCK_HEADER + total)) != NULL) {
      merged->prev = NULL;
      merged->size = total;
    }
    b = a->head;
    if (merged == NULL) {   /* keep the newest, the largest */
      b = b->prev;
      a->head->prev = NULL;
      merged = a->head;
    }
    free_chain(b);
    a->head = merged;
  }
  if (a->head->size > BLOCK_KEEP_MAX) {
    free(a->head);
    a->head = NULL;
  }
  a->used = 0;
}

void aigc_json_arena_free (aigc_json_arena *a) {
  free_chain(a->head);
  a->head = NULL;
  a->used = 0;
}

int aigc_json_arena_move_block (aigc_json_arena *to, aigc_json_arena *from, size_t max) {
  aigc_json_block *b = from->head;
  if (b == NULL || to->head != NULL || b->size > max)
    return 0;
  free_chain(b->prev);
  b->prev = NULL;
  to->head = b;
  to->used = 0;
  from->head = NULL;
  from->used = 0;
  return 1;
}

static void *arena_newblock (aigc_json_arena *a, size_t n) {
  size_t size = BLOCK_MIN;
  aigc_json_block *b;
  if (a->head != NULL && a->head->size <= ((size_t)-1 - BLOCK_HEADER) / 2)
    size = a->head->size * 2;
  if (size < n)
    size = n;
  if (size > (size_t)-1 - BLOCK_HEADER)
    return NULL;
  b = (aigc_json_block *)malloc(BLOCK_HEADER + size);
  if (b == NULL)
    return NULL;
  b->prev = a->head;
  b->size = size;
  a->head = b;
  a->used = n;
  return BLOCK_DATA(b);
}

/* n bytes aligned for any aigc_json_value; NULL on ENOMEM */
static inline void *arena_alloc (aigc_json_arena *a, size_t n) {
  if (n > (size_t)-1 - AIGC_JSON_ALIGN)
    return NULL;
  n = ALIGN_UP(n);
  if (a->head != NULL && n <= a->head->size - a->used) {
    void *p = BLOCK_DATA(a->head) + a->used;
    a->used += n;
    return p;
  }
  return arena_newblock(a, n);
}

/*
** Gives back the tail of the most recent allocation p, keeping its first n
** bytes: a string is allocated at its worst-case size, then trimmed.
*/
static void arena_trim (aigc_json_arena *a, void *p, size_t n) {
  a->used = (size_t)((char *)p - BLOCK_DATA(a->head)) + ALIGN_UP(n);
}

/* }==================================================================== */


/* {====================================================================
** UTF-8
** ===================================================================== */

int aigc_json_utf8_valid (const char *str, size_t len, size_t *bad_offset) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < len) {
    if (len - i >= 8) {   /* ASCII runs eight bytes at a time */
      uint64_t w;
      memcpy(&w, s + i, 8);
      if ((w & UINT64_C(0x8080808080808080)) == 0) {
        i += 8;
        continue;
      }
    }
    if (s[i] < 0x80)
      i++;
    else {
      size_t n = aigc_utf8_seq(s + i, len - i);
      if (n == 0) {
        if (bad_offset != NULL)
          *bad_offset = i;
        return 0;
      }
      i += n;
    }
  }
  return 1;
}

/* Writes code point cp (<= 0x10FFFF, not a surrogate) as UTF-8 at d. */
static unsigned char *utf8_put (unsigned char *d, unsigned long cp) {
  if (cp < 0x80)
    *d++ = (unsigned char)cp;
  else if (cp < 0x800) {
    *d++ = (unsigned char)(0xC0 | (cp >> 6));
    *d++ = (unsigned char)(0x80 | (cp & 0x3F));
  }
  else if (cp < 0x10000) {
    *d++ = (unsigned char)(0xE0 | (cp >> 12));
    *d++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    *d++ = (unsigned char)(0x80 | (cp & 0x3F));
  }
  else {
    *d++ = (unsigned char)(0xF0 | (cp >> 18));
    *d++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    *d++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    *d++ = (unsigned char)(0x80 | (cp & 0x3F));
  }
  return d;
}

/* }==================================================================== */


/* {====================================================================
** Parser
** ===================================================================== */

/*
** Byte classes inside a string: 0 plain ASCII (copied as is), 1 '"',
** 2 '\\', 3 a control character (< 0x20, rejected), 4 a byte >= 0x80
** (the start of a UTF-8 sequence to validate).
*/
#define C3 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3
#define C4 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4
static const unsigned char strclass[256] = {
  C3, C3,
  0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,     /* 0x20: '"' */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,     /* 0x50: '\\' */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  C4, C4, C4, C4, C4, C4, C4, C4
};
#undef C3
#undef C4

#define IS_DIGIT(c)  ((unsigned)((c) - '0') < 10u)
#define IS_WS(c)     ((c) == ' ' || (c) == '\n' || (c) == '\r' || (c) == '\t')

#define STR_SPECIAL(w) AIGC_JSON_STR_SPECIAL(w)   /* json.h */

/* index of the lowest flagged byte of a STR_SPECIAL mask, where cheap */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HAS_FIRST_BYTE 1
#define FIRST_BYTE(m)  ((size_t)__builtin_ctzll(m) / 8)
#else
#define HAS_FIRST_BYTE 0
#endif

/* the scratch stacks start on the C stack; only big documents spill */
#define SLOTS_LOCAL  48
#define FRAMES_LOCAL 32

typedef struct frame {
  size_t base;       /* first scratch slot of this container's children */
  int parent_is_object;
} frame;

/*
** What the helpers share. The cursor itself is not here: parse_value keeps
** it in a local and the helpers take and return it, so it can live in a
** register (stores into the tree could otherwise alias it).
*/
typedef struct parser {
  const unsigned char *begin, *end;
  aigc_json_arena *arena;
  aigc_json_error *err;
  int status;                  /* what a failure returns: AIGC_JSON_E* */
  aigc_json_limits limits;            /* the arena's, defaults filled in */
  aigc_json_member *slots;            /* children of the open containers */
  size_t cslots;
  frame *frames;               /* the open containers, innermost last */
  size_t cframes;
  aigc_json_member slots_local[SLOTS_LOCAL];
  frame frames_local[FRAMES_LOCAL];
  locale_t saved_locale;       /* the thread's own, while c_numeric is 1 */
  int c_numeric;               /* 1: switched to aigc_json_c_locale at the first float */
} parser;

static const unsigned char *fail (parser *P, const unsigned char *at,
                                  const char *msg) {
  size_t n = strlen(msg);
  if (n >= sizeof(P->err->message))
    n = sizeof(P->err->message) - 1;
  P->err->offset = (size_t)(at - P->begin);
  memcpy(P->err->message, msg, n);
  P->err->message[n] = '\0';
  P->status = -1;
  return NULL;
}

static const unsigned char *fail_nomem (parser *P, const unsigned char *at) {
  fail(P, at, "not enough memory");
  P->status = -2;
  return NULL;
}

/* The value at `at` is one too many: past limits.max_values (containers
   == 0) or limits.max_containers. */
static int fail_limit (parser *P, const unsigned char *at, int containers) {
  char msg[80];
  if (containers)
    snprintf(msg, sizeof(msg), "more than %zu arrays and objects",
             P->limits.max_containers);
  else
    snprintf(msg, sizeof(msg), "more than %zu values", P->limits.max_values);
  fail(P, at, msg);
  P->status = AIGC_JSON_ELIMIT;
  return AIGC_JSON_ELIMIT;
}

static const unsigned char *fail_char (parser *P, const unsigned char *at) {
  char msg[40];
  if (at >= P->end)
    return fail(P, P->end, "unexpected end of input");
  if (*at > 0x20 && *at < 0x7F)
    snprintf(msg, sizeof(msg), "unexpected character '%c'", *at);
  else
    snprintf(msg, sizeof(msg), "unexpected byte 0x%02X", *at);
  return fail(P, at, msg);
}

/*
** Grows one of the scratch stacks (*p, holding *cap items of size elem,
** initially the parser's local array `local`) to twice its size.
*/
static int scratch_grow (void **p, size_t *cap, size_t elem, void *local) {
  size_t ncap;
  void *np;
  if (*cap > ((size_t)-1 / 2) / elem)
    return -1;
  ncap = *cap * 2;
  if (*p == local) {
    np = malloc(ncap * elem);
    if (np != NULL)
      memcpy(np, *p, *cap * elem);
  }
  else
    np = realloc(*p, ncap * elem);
  if (np == NULL)
    return -1;
  *p = np;
  *cap = ncap;
  return 0;
}

static int hexval (unsigned c) {
  if (IS_DIGIT(c)) return (int)(c - '0');
  c |= 0x20;
  if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
  return -1;
}

/* The 4 hex digits at s, all before lim, or -1. */
static long hex4 (const unsigned char *s, const unsigned char *lim) {
  long v = 0;
  int i;
  if (lim - s < 4)
    return -1;
  for (i = 0; i < 4; i++) {
    int h = hexval(s[i]);
    if (h < 0)
      return -1;
    v = (v << 4) | h;
  }
  return v;
}

/*
** The string slow path, entered at the first backslash `s` of the string
** whose contents start at `start`. Finds the closing quote first, so the
** string can be decoded straight into an arena allocation of its raw size
** (decoding never grows a string: an escape of n bytes yields at most n
** bytes of UTF-8), which is then trimmed.
*/
static const unsigned char *string_escaped (parser *P,
                                            const unsigned char *start,
                                            const unsigned char *s,
                                            char **out, size_t *outlen) {
  const unsigned char *q = s, *end = P->end;
  unsigned char *dst, *d;
  for (;;) {       /* q: the closing quote */
    if (q >= end)
      return fail(P, end, "unterminated string");
    if (*q == '"')
      break;
    if (*q == '\\') {
      if (end - q < 2)
        return fail(P, end, "unterminated string");
      q += 2;
    }
    else
      q++;
  }
  dst = (unsigned char *)arena_alloc(P->arena, (size_t)(q - start) + 1);
  if (dst == NULL)
    return fail_nomem(P, start);
  memcpy(dst, start, (size_t)(s - start));
  d = dst + (s - start);
  while (s < q) {
    unsigned c = *s;
    if (c == '\\') {
      long cp;
      switch (s[1]) {   /* s + 1 < q: no backslash right before q */
        case '"': *d++ = '"'; break;
        case '\\': *d++ = '\\'; break;
        case '/': *d++ = '/'; break;
        case 'b': *d++ = '\b'; break;
        case 'f': *d++ = '\f'; break;
        case 'n': *d++ = '\n'; break;
        case 'r': *d++ = '\r'; break;
        case 't': *d++ = '\t'; break;
        case 'u':
          cp = hex4(s + 2, q);
          if (cp < 0)
            return fail(P, s, "invalid \\u escape");
          s += 4;   /* with the += 2 below: past the 6-byte escape */
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            long lo = (q - s >= 8 && s[2] == '\\' && s[3] == 'u')
                      ? hex4(s + 4, q) : -1;
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
              s += 6;
            }
            else
              cp = 0xFFFD;   /* a lone high surrogate has no UTF-8 form */
          }
          else if (cp >= 0xDC00 && cp <= 0xDFFF)
            cp = 0xFFFD;     /* a lone low surrogate */
          d = utf8_put(d, (unsigned long)cp);
          break;
        default:
          return fail(P, s, "invalid escape in string");
      }
      s += 2;
    }
    else if (c < 0x20)
      return fail(P, s, "control character in string");
    else if (c < 0x80)
      *d++ = *s++;
    else {
      size_t n = aigc_utf8_seq(s, (size_t)(q - s));
      if (n == 0)
        return fail(P, s, "invalid UTF-8 in string");
      memcpy(d, s, n);
      d += n;
      s += n;
    }
  }
  *d = '\0';
  *out = (char *)dst;
  *outlen = (size_t)(d - dst);
  arena_trim(P->arena, dst, *outlen + 1);
  return q + 1;
}

/*
** The rest of the string whose contents start at `start`, the bytes
** before s being known plain. Multibyte characters are validated here and
** still copied with one memcpy; at the first backslash string_escaped
** takes over.
*/
static const unsigned char *string_rest (parser *P,
                                         const unsigned char *start,
                                         const unsigned char *s,
                                         char **out, size_t *outlen) {
  const unsigned char *end = P->end;
  char *dst;
  size_t n;
  for (;;) {
    while (end - s >= 8) {
      uint64_t w;
      memcpy(&w, s, 8);
      w = STR_SPECIAL(w);
      if (w != 0) {
#if HAS_FIRST_BYTE
        s += FIRST_BYTE(w);
#endif
        break;
      }
      s += 8;
    }
    while (s < end && strclass[*s] == 0)
      s++;
    if (s >= end)
      return fail(P, end, "unterminated string");
    switch (strclass[*s]) {
      case 1:
        goto closed;
      case 2:
        return string_escaped(P, start, s, out, outlen);
      case 3:
        return fail(P, s, "control character in string");
      default:
        n = aigc_utf8_seq(s, (size_t)(end - s));
        if (n == 0)
          return fail(P, s, "invalid UTF-8 in string");
        s += n;
        break;
    }
  }
closed:
  n = (size_t)(s - start);
  dst = (char *)arena_alloc(P->arena, n + 1);
  if (dst == NULL)
    return fail_nomem(P, start);
  memcpy(dst, start, n);
  dst[n] = '\0';
  *out = dst;
  *outlen = n;
  return s + 1;
}

/*
** Parses the string whose opening quote is at p; returns the position
** after its closing quote, or NULL. Inline, the common case: plain ASCII
** shorter than 16 bytes (keys, roles, ids, most streamed deltas), found
** with two word tests and copied with two word moves.
*/
static inline const unsigned char *parse_string (parser *P,
                                                 const unsigned char *p,
                                                 char **out, size_t *outlen) {
  const unsigned char *start = p + 1;
#if HAS_FIRST_BYTE
  if (P->end - start >= 16) {
    uint64_t w0, w1, m;
    size_t n;
    char *dst;
    memcpy(&w0, start, 8);
    memcpy(&w1, start + 8, 8);
    if ((m = STR_SPECIAL(w0)) != 0)
      n = FIRST_BYTE(m);
    else if ((m = STR_SPECIAL(w1)) != 0)
      n = 8 + FIRST_BYTE(m);
    else
      return string_rest(P, start, start + 16, out, outlen);
    if (start[n] != '"')
      return string_rest(P, start, start + n, out, outlen);
    dst = (char *)arena_alloc(P->arena, 16);
    if (dst == NULL)
      return fail_nomem(P, start);
    memcpy(dst, &w0, 8);
    memcpy(dst + 8, &w1, 8);
    dst[n] = '\0';
    arena_trim(P->arena, dst, n + 1);
    *out = dst;
    *outlen = n;
    return start + n + 1;
  }
#endif
  return string_rest(P, start, start, out, outlen);
}

/*
** The process's "C" numeric locale (json.h). Its once flag and the locale
** are written inside pthread_once only (scripts/check-globals.lua).
*/
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale = (locale_t)0;

static void make_c_locale (void) {
  c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

locale_t aigc_json_c_locale (void) {
  if (pthread_once(&c_locale_once, make_c_locale) != 0)
    return (locale_t)0;
  return c_locale;
}

/*
** Converts the JSON float text s[0..n) (grammar already checked) with
** strtod. At a parse's first float the thread is switched to the C locale
** (aigc_json_parse switches it back): another thread's setlocale between
** a strtod and the decimal point read after it refused valid numbers. If
** no C locale could be made, strtod obeys the process's; if it stops
** short, that locale's decimal point replaces '.' and it is retried.
*/
static const unsigned char *to_double (parser *P, const unsigned char *s,
                                       size_t n, double *d) {
  char local[64];
  char *buf = local, *endp;
  const char *dp;
  size_t dplen, i, j;
  const unsigned char *rc = s + n;
  if (n + 8 > sizeof(local)) {   /* + room for a multibyte decimal point */
    buf = (char *)malloc(n + 8);
    if (buf == NULL)
      return fail_nomem(P, s);
  }
  memcpy(buf, s, n);
  buf[n] = '\0';
  if (P->c_numeric == 0) {
    locale_t c = aigc_json_c_locale();
    P->c_numeric = 2;   /* (no C locale: the process's) */
    if (c != (locale_t)0 && (P->saved_locale = uselocale(c)) != (locale_t)0)
      P->c_numeric = 1;
  }
  *d = strtod(buf, &endp);
  if (endp != buf + n) {
    dp = localeconv()->decimal_point;
    dplen = strlen(dp);
    for (i = 0; i < n && buf[i] != '.'; i++) ;
    if (i < n && dplen >= 1 && dplen <= 8) {
      memmove(buf + i + dplen, buf + i + 1, n - i);   /* with the NUL */
      for (j = 0; j < dplen; j++)
        buf[i + j] = dp[j];
      *d = strtod(buf, &endp);
    }
    if (*endp != '\0')
      rc = fail(P, s, "invalid number");
  }
  if (rc != NULL && isinf(*d))
    rc = fail(P, s, "number out of range");
  if (buf != local)
    free(buf);
  return rc;
}

/*
** Numbers: the exact JSON grammar. Integers are accumulated exactly in a
** uint64 so every int64, INT64_MIN included, is exact; anything with a
** fraction or exponent, or beyond int64, goes to strtod.
*/
static const unsigned char *parse_number (parser *P, const unsigned char *s,
                                          aigc_json_value *v) {
  const unsigned char *start = s, *end = P->end;
  uint64_t u = 0;
  int neg = 0, isfloat = 0, overflow = 0;
  if (*s == '-') {
    neg = 1;
    s++;
    if (s >= end || !IS_DIGIT(*s))
      return fail_char(P, s);
  }
  if (*s == '0') {
    s++;
    if (s < end && IS_DIGIT(*s))
      return fail(P, s, "leading zero in number");
  }
  else {
    do {
      unsigned dg = (unsigned)(*s - '0');
      if (u < UINT64_C(1844674407370955161) ||
          (u == UINT64_C(1844674407370955161) && dg <= 5))
        u = u * 10 + dg;
      else
        overflow = 1;
      s++;
    } while (s < end && IS_DIGIT(*s));
  }
  if (s < end && *s == '.') {
    s++;
    if (s >= end || !IS_DIGIT(*s))
      return fail_char(P, s);
    while (s < end && IS_DIGIT(*s))
      s++;
    isfloat = 1;
  }
  if (s < end && (*s == 'e' || *s == 'E')) {
    s++;
    if (s < end && (*s == '+' || *s == '-'))
      s++;
    if (s >= end || !IS_DIGIT(*s))
      return fail_char(P, s);
    while (s < end && IS_DIGIT(*s))
      s++;
    isfloat = 1;
  }
  v->len = v->cap = 0;
  if (!isfloat && !overflow) {
    if (!neg && u <= (uint64_t)INT64_MAX) {
      v->type = AIGC_JSON_INT;
      v->u.i = (int64_t)u;
      return s;
    }
    if (neg && u <= (uint64_t)INT64_MAX + 1) {
      v->type = AIGC_JSON_INT;
      v->u.i = (u == (uint64_t)INT64_MAX + 1) ? INT64_MIN : -(int64_t)u;
      return s;
    }
  }
  v->type = AIGC_JSON_FLOAT;
  return to_double(P, start, (size_t)(s - start), &v->u.d);
}

/* p starts neither "null", "true" nor "false" (whichever `word` is). */
static const unsigned char *bad_literal (parser *P, const unsigned char *p,
                                         const char *word) {
  size_t avail = (size_t)(P->end - p), n = strlen(word);
  if (avail < n && memcmp(p, word, avail) == 0)
    return fail(P, P->end, "unexpected end of input");
  return fail(P, p, "invalid literal");
}

/*
** Moves the children of the container being closed, scratch slots
** [base, nslots), into one exactly sized arena array at v.
*/
static int close_container (parser *P, aigc_json_value *v, int is_object,
                            const aigc_json_member *src, size_t n) {
  size_t i;
  v->len = n;
  v->cap = 0;
  if (is_object) {
    aigc_json_member *m = NULL;
    v->type = AIGC_JSON_OBJECT;
    if (n > 0) {
      if (n > (size_t)-1 / sizeof(aigc_json_member) ||
          (m = (aigc_json_member *)arena_alloc(P->arena, n * sizeof(aigc_json_member))) == NULL)
        return -1;
      memcpy(m, src, n * sizeof(aigc_json_member));
    }
    v->u.members = m;
  }
  else {
    aigc_json_value *items = NULL;
    v->type = AIGC_JSON_ARRAY;
    if (n > 0) {
      if (n > (size_t)-1 / sizeof(aigc_json_value) ||
          (items = (aigc_json_value *)arena_alloc(P->arena, n * sizeof(aigc_json_value))) == NULL)
        return -1;
      for (i = 0; i < n; i++)
        items[i] = src[i].value;
    }
    v->u.items = items;
  }
  return 0;
}

/*
** Hash floods. Lua 5.1 to 5.3 hash a string of 32 bytes or more from a
** sample of its bytes (every ((len >> 5) + 1)th from its end), Lua 5.1 with
** no seed: keys that differ only in the other bytes (or made to collide)
** share one chain of the table, and Lua builds an object of n of them in
** n^2 / 2 steps (40,000 such keys, 2.7 MB of reply: 9 s on Lua 5.1; the 64
** MiB a reply may have: hours). With limits.lua_hash set (those Luas: see
** compat.h), an object of more than FLOOD_MIN keys is refused as a limit
** when its chains in a table its size, by Lua 5.1's hash, would cost more
** than FLOOD_STEPS steps a key plus FLOOD_SLACK (Lua 5.1's chains exactly;
** the sampled keys that collide on 5.2 and 5.3 collide in it too). Honest
** keys cost a step or two a key. The slack bounds what objects just under
** it cost: a 64 MiB reply of them, ~2e8 steps (~2 s on Lua 5.1).
*/
#define FLOOD_MIN 64
#define FLOOD_STEPS 64
#define FLOOD_SLACK ((size_t)1 << 16)

static unsigned lua51_hash (const char *s, size_t len) {
  unsigned h = (unsigned)len;
  size_t step = (len >> 5) + 1, l;
  for (l = len; l >= step; l -= step)
    h = h ^ ((h << 5) + (h >> 2) + (unsigned char)s[l - 1]);
  return h;
}

/* 1 when the n members are a hash flood, 0 when not, -1 out of memory. */
static int hash_flood (const aigc_json_member *m, size_t n) {
  size_t slots = 1, i, steps = 0, budget = FLOOD_STEPS * n + FLOOD_SLACK;
  size_t *count;
  while (slots < n)
    slots <<= 1;
  count = (size_t *)calloc(slots, sizeof *count);
  if (count == NULL)
    return -1;
  for (i = 0; i < n && steps <= budget; i++)
    steps += count[lua51_hash(m[i].key, m[i].key_len) & (slots - 1)]++;
  free(count);
  return steps > budget;
}

/*
** The same flood through Lua's string table, where strings are interned
** (5.1: all; 5.2, 5.3: those of 40 bytes or less): distinct strings of one
** hash, keys or values, anywhere in the document, share one chain there
** (20,000 of them in an array: 1.2 s on Lua 5.1). After a parse with
** limits.lua_hash, the strings of 32 bytes or more (those hashed from a
** sample) are counted by their Lua 5.1 hash; more than FLOOD_STEPS steps a
** string plus FLOOD_SLACK in all (chain steps, and the probes of the count's
** own table, which a flood cannot then slow) refuse the document.
*/
typedef struct flood_slot {
  const char *rep;   /* the first string of this hash; NULL: free */
  size_t len;
  size_t others;     /* strings of this hash unlike rep, so far */
  unsigned hash;
} flood_slot;

typedef struct flood_table {
  flood_slot *slot;
  size_t mask, steps;
  unsigned mix;      /* varies the slots from one parse to another */
} flood_table;

static size_t count_long (const aigc_json_value *v) {
  size_t n = 0, i;
  if (v->type == AIGC_JSON_STRING)
    return v->len >= 32;
  if (v->type == AIGC_JSON_ARRAY)
    for (i = 0; i < v->len; i++)
      n += count_long(&v->u.items[i]);
  else if (v->type == AIGC_JSON_OBJECT)
    for (i = 0; i < v->len; i++)
      n += (v->u.members[i].key_len >= 32) + count_long(&v->u.members[i].value);
  return n;
}

static void flood_add (flood_table *t, const char *s, size_t len) {
  unsigned h;
  size_t i;
  if (len < 32)
    return;
  h = lua51_hash(s, len);
  for (i = ((h ^ t->mix) * 2654435761u) & t->mask; t->slot[i].rep != NULL; i = (i + 1) & t->mask) {
    flood_slot *f = &t->slot[i];
    if (f->hash == h) {
      if (f->len != len || memcmp(f->rep, s, len) != 0)
        t->steps += ++f->others;
      return;
    }
    t->steps++;
  }
  t->slot[i].rep = s;
  t->slot[i].len = len;
  t->slot[i].others = 0;
  t->slot[i].hash = h;
}

static void flood_walk (flood_table *t, const aigc_json_value *v) {
  size_t i;
  if (v->type == AIGC_JSON_STRING)
    flood_add(t, v->u.s, v->len);
  else if (v->type == AIGC_JSON_ARRAY)
    for (i = 0; i < v->len; i++)
      flood_walk(t, &v->u.items[i]);
  else if (v->type == AIGC_JSON_OBJECT)
    for (i = 0; i < v->len; i++) {
      flood_add(t, v->u.members[i].key, v->u.members[i].key_len);
      flood_walk(t, &v->u.members[i].value);
    }
}

/* 1 when the strings of v are a hash flood, 0 when not, -1 out of memory. */
static int string_flood (const aigc_json_value *v) {
  size_t n = count_long(v), slots = 2;
  flood_table t;
  if (n <= FLOOD_MIN)
    return 0;
  while (slots < 2 * n)
    slots <<= 1;
  t.slot = (flood_slot *)calloc(slots, sizeof *t.slot);
  if (t.slot == NULL)
    return -1;
  t.mask = slots - 1;
  t.steps = 0;
  t.mix = (unsigned)(size_t)&t ^ (unsigned)(size_t)t.slot;   /* (addresses: ASLR) */
  flood_walk(&t, v);
  free(t.slot);
  return t.steps > FLOOD_STEPS * n + FLOOD_SLACK;
}

/* 1 when v or an object inside it is a hash flood (hash_flood), 0 when
   not, -1 out of memory. */
static int objects_flood (const aigc_json_value *v) {
  size_t i;
  int rc = 0;
  if (v->type == AIGC_JSON_OBJECT && v->len > FLOOD_MIN)
    rc = hash_flood(v->u.members, v->len);
  if (v->type == AIGC_JSON_ARRAY)
    for (i = 0; i < v->len && rc == 0; i++)
      rc = objects_flood(&v->u.items[i]);
  else if (v->type == AIGC_JSON_OBJECT)
    for (i = 0; i < v->len && rc == 0; i++)
      rc = objects_flood(&v->u.members[i].value);
  return rc;
}

/*
** A tree built by other means than a parse (a stream's accumulated reply:
** each event passed the checks above, but one object may gain a key an
** event, and the strings add up) checked as a parse with limits.lua_hash
** checks its document: 1 (*what says how) when it floods, 0 when not, -1
** out of memory. Linear in the tree.
*/
int aigc_json_flood (const aigc_json_value *v, const char **what) {
  int rc = objects_flood(v);
  *what = "an object whose keys Lua hashes alike (a hash flood)";
  if (rc == 0) {
    rc = string_flood(v);
    *what = "strings that Lua hashes alike (a hash flood)";
  }
  return rc;
}

#define SKIP_WS  while (p < end && IS_WS(*p)) p++

/* a new scratch slot at slots[nslots - 1] */
#define PUSH_SLOT do { \
    if (nslots == P->cslots) { \
      if (scratch_grow((void **)&P->slots, &P->cslots, sizeof(aigc_json_member), \
                       P->slots_local) != 0) { \
        fail_nomem(P, p); \
        return -2; \
      } \
      slots = P->slots; \
    } \
    nslots++; \
  } while (0)

#define CHECK(e)  do { if ((p = (e)) == NULL) return P->status; } while (0)

/*
** The value loop. Every value is parsed straight into its final place:
** *out at the top level, else the scratch slot of its parent's child —
** pushed here for an array item, pushed with the key for an object member.
** So a container's own slot is always the one just below its children
** (base - 1), where it is written when it closes. `done` reads what
** follows a finished value: ',' leads to the next child, a closing bracket
** completes the parent, which is in turn a finished value. The cursor and
** the stack tops are locals, so they stay in registers.
*/
static int parse_value (parser *P, int max_depth, aigc_json_value *out) {
  const unsigned char *p = P->begin, *end = P->end;
  aigc_json_member *slots = P->slots;
  size_t nslots = 0, nframes = 0;
  /* values and containers the document may still hold (aigc_json_limits) */
  size_t values_left = P->limits.max_values;
  size_t containers_left = P->limits.max_containers;
  int in_object = 0;     /* the innermost open container is an object */
  aigc_json_value *v;
  SKIP_WS;
  if (p >= end) {
    fail(P, p, "empty input");
    return -1;
  }
value:
  SKIP_WS;
  if (p >= end) {
    fail(P, p, "unexpected end of input");
    return -1;
  }
  if (values_left-- == 0)   /* counted before it costs a scratch slot */
    return fail_limit(P, p, 0);
  if (nframes == 0)
    v = out;
  else {
    if (!in_object)
      PUSH_SLOT;
    v = &slots[nslots - 1].value;
  }
  switch (*p) {
    case '{': case '[':
      if (containers_left-- == 0)
        return fail_limit(P, p, 1);
      if (nframes >= (size_t)max_depth) {
        char msg[48];
        snprintf(msg, sizeof(msg), "nesting deeper than %d", max_depth);
        fail(P, p, msg);
        return -1;
      }
      if (nframes == P->cframes &&
          scratch_grow((void **)&P->frames, &P->cframes, sizeof(frame),
                       P->frames_local) != 0) {
        fail_nomem(P, p);
        return -2;
      }
      P->frames[nframes].base = nslots;
      P->frames[nframes].parent_is_object = in_object;
      nframes++;
      in_object = (*p++ == '{');
      SKIP_WS;
      if (p < end && *p == (in_object ? '}' : ']')) {
        p++;
        goto close;
      }
      if (in_object)
        goto key;
      goto value;
    case '"':
      v->type = AIGC_JSON_STRING;
      v->cap = 0;
      CHECK(parse_string(P, p, &v->u.s, &v->len));
      goto done;
    case 'n':
      if (end - p < 4 || memcmp(p, "null", 4) != 0)
        CHECK(bad_literal(P, p, "null"));
      p += 4;
      v->type = AIGC_JSON_NULL;
      break;
    case 't':
      if (end - p < 4 || memcmp(p, "true", 4) != 0)
        CHECK(bad_literal(P, p, "true"));
      p += 4;
      v->type = AIGC_JSON_TRUE;
      break;
    case 'f':
      if (end - p < 5 || memcmp(p, "false", 5) != 0)
        CHECK(bad_literal(P, p, "false"));
      p += 5;
      v->type = AIGC_JSON_FALSE;
      break;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
      CHECK(parse_number(P, p, v));
      goto done;
    default:
      fail_char(P, p);
      return -1;
  }
  v->len = v->cap = 0;
  v->u.i = 0;
done:
  SKIP_WS;
  if (nframes == 0) {
    if (p < end) {
      fail(P, p, "trailing characters after JSON value");
      return -1;
    }
    return 0;
  }
  if (p < end) {
    if (*p == ',') {
      p++;
      SKIP_WS;
      if (in_object)
        goto key;
      goto value;
    }
    if (*p == (in_object ? '}' : ']')) {
      p++;
      goto close;
    }
  }
  fail_char(P, p);
  return -1;
close: {
    const frame *f = &P->frames[--nframes];
    size_t base = f->base;
    int flood = in_object && P->limits.lua_hash && nslots - base > FLOOD_MIN
                ? hash_flood(slots + base, nslots - base) : 0;
    if (flood > 0) {
      fail(P, p - 1, "an object whose keys Lua hashes alike (a hash flood)");
      P->status = AIGC_JSON_ELIMIT;
      return AIGC_JSON_ELIMIT;
    }
    if (flood < 0 || close_container(P, nframes > 0 ? &slots[base - 1].value : out,
                        in_object, slots + base, nslots - base) != 0) {
      fail_nomem(P, p);
      return -2;
    }
    nslots = base;
    in_object = f->parent_is_object;
    goto done;
  }
key:   /* p: where an object key must start, whitespace skipped */
  if (p >= end || *p != '"') {
    fail_char(P, p);
    return -1;
  }
  PUSH_SLOT;
  CHECK(parse_string(P, p, &slots[nslots - 1].key, &slots[nslots - 1].key_len));
  SKIP_WS;
  if (p >= end || *p != ':') {
    fail_char(P, p);
    return -1;
  }
  p++;
  goto value;
}

#undef SKIP_WS
#undef PUSH_SLOT
#undef CHECK

int aigc_json_parse (aigc_json_arena *a, const char *text, size_t len, int max_depth,
              aigc_json_value *out, aigc_json_error *err) {
  parser P;
  int rc;
  if (text == NULL) {   /* only sensible with len 0: "empty input" */
    text = "";
    len = 0;
  }
  P.begin = (const unsigned char *)text;
  P.end = P.begin + len;
  P.arena = a;
  P.err = err;
  P.status = 0;
  P.limits = aigc_json_limits_of(&a->limits);
  P.slots = P.slots_local;
  P.cslots = SLOTS_LOCAL;
  P.frames = P.frames_local;
  P.cframes = FRAMES_LOCAL;
  P.c_numeric = 0;
  if (max_depth <= 0)
    max_depth = AIGC_JSON_DEFAULT_MAX_DEPTH;
  rc = parse_value(&P, max_depth, out);
  if (P.c_numeric == 1)
    uselocale(P.saved_locale);
  if (P.slots != P.slots_local)
    free(P.slots);
  if (P.frames != P.frames_local)
    free(P.frames);
  if (rc == 0 && P.limits.lua_hash) {
    int flood = string_flood(out);
    if (flood > 0) {
      fail(&P, P.end, "strings that Lua hashes alike (a hash flood)");
      rc = AIGC_JSON_ELIMIT;
    }
    else if (flood < 0) {
      fail_nomem(&P, P.end);
      rc = -2;
    }
  }
  if (rc != 0) {
    out->type = AIGC_JSON_NULL;
    out->len = out->cap = 0;
    out->u.i = 0;
  }
  return rc;
}

/* }==================================================================== */


/* {====================================================================
** Access
** ===================================================================== */

const aigc_json_value *aigc_json_get (const aigc_json_value *obj, const char *key) {
  size_t n, i;
  if (obj == NULL || obj->type != AIGC_JSON_OBJECT)
    return NULL;
  n = strlen(key);
  for (i = obj->len; i-- > 0; ) {
    const aigc_json_member *m = &obj->u.members[i];
    if (m->key_len == n && memcmp(m->key, key, n) == 0)
      return &m->value;
  }
  return NULL;
}

const char *aigc_json_str (const aigc_json_value *v, size_t *len) {
  if (v == NULL || v->type != AIGC_JSON_STRING) {
    if (len != NULL)
      *len = 0;
    return NULL;
  }
  if (len != NULL)
    *len = v->len;
  return v->u.s;
}

/* }==================================================================== */
