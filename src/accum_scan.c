/*
** accum_scan.c — the fast path of a chat stream: the common chunk merged
** straight from its bytes, with no JSON tree (see aigc_accum_scan in
** accum.h). Plain C, no Lua.
**
** Almost every chunk of a chat stream says nothing new but a piece of
** text: its id, model, created, fingerprint... repeat what the first chunk
** said, its choice's logprobs and finish_reason are null, and its delta
** holds one string to append to the message's content. Parsing such a
** chunk into a tree and merging the tree member by member cost ~7,000
** instructions for ~250 bytes; checking the bytes against the accumulated
** reply and appending the text costs a fraction of that.
**
** The rule that keeps it exact: the scanner merges a chunk only when
** aigc_accum_add would, given the parsed chunk, change nothing but append
** that text (or change nothing at all), and declines everything else
** before touching anything. It declines:
**   - anything the full parser might read differently or refuse: a \u
**     escape, a number other than a plain integer of up to 18 digits, an
**     object or array other than choices[0] and its delta, a repeated key
**     in any object, more than 16 members in one, bytes after the value
**     (strict JSON otherwise: control characters and bad UTF-8 decline);
**   - a chunk whose merge would add or replace anything: a member the
**     accumulated object does not have yet, a value other than the one it
**     holds (null always leaves a member that exists alone), a choice or
**     message not accumulated yet, content that is not yet a string;
**   - "error" at the top (the request's own check), zero or several
**     choices, a choice "index" that is not an integer in 0..127, a delta
**     that is not an object, an accumulated object of more than 16 members
**     (searched linearly here: the full merge has a hash table for those).
** A declined chunk goes through aigc_json_parse and aigc_accum_add as
** before. spec/c/accum_scan_test.c and spec/fuzz/fuzz_chunkscan.c check
** the two paths against each other (the callback's text and the merged
** reply byte for byte).
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "accum.h"
#include "accum_tree.h"

#define SCAN_MAX_MEMBERS 16   /* per object, and per accumulated object searched */

/* One member of a scanned object: a scalar, or the object or array that
   the object's scanner handles itself (type OBJECT). */
typedef struct scan_member {
  const char *key;
  size_t klen;
  aigc_json_type type;     /* NULL, FALSE, TRUE, INT, STRING or OBJECT */
  const char *s;           /* STRING: the raw bytes between the quotes */
  size_t slen;
  int escaped;             /* STRING: holds backslash escapes */
  int64_t i;               /* INT */
} scan_member;

typedef struct scan_object {
  scan_member m[SCAN_MAX_MEMBERS];
  size_t n;
} scan_object;

typedef struct scanner {
  const unsigned char *p, *end;
  scan_object top, choice, delta;
  int have_choice, have_delta;
} scanner;

static void ws (scanner *S) {
  while (S->p < S->end && (*S->p == ' ' || *S->p == '\n' || *S->p == '\r' || *S->p == '\t'))
    S->p++;
}

/* Skips whitespace, then c if it is next. */
static int eat (scanner *S, int c) {
  ws(S);
  if (S->p < S->end && *S->p == c) {
    S->p++;
    return 1;
  }
  return 0;
}

/* Nonzero when one of the 8 bytes of x is a quote, a backslash, a
   control character or not ASCII: where scan_string must look closer. */
static uint64_t special8 (uint64_t x) {
  const uint64_t ones = UINT64_C(0x0101010101010101), high = UINT64_C(0x8080808080808080);
  uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');   /* zero bytes where they are */
  return (((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b) | x) & high;
}

/* The offset of the first byte special8 flagged (its lowest flag is exact;
   higher ones may be borrows). Without the builtin: 0, the byte loop
   walks on from there, as correct and a little slower. */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) \
    && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define FIRST_SPECIAL(m) ((size_t)__builtin_ctzll(m) >> 3)
/* The flags of special8 for the last k (1 to 8) of its 8 bytes. */
#define LAST_BYTES(k) (~UINT64_C(0) << (8 * (8 - (k))))
#define HAVE_LAST_BYTES 1
#else
#define FIRST_SPECIAL(m) ((size_t)0)
#define HAVE_LAST_BYTES 0
#endif

/*
** A string (S->p at its quote): its raw bytes, 8 at a time up to the first
** special one. The bytes escapes leave are ASCII, so the raw text is valid
** UTF-8 exactly when the decoded one is.
*/
static int scan_string (scanner *S, const char **s, size_t *n, int *escaped) {
  const unsigned char *p = S->p + 1, *start = p;
  unsigned high = 0;
  *escaped = 0;
  for (;;) {
    if (S->end - p >= 8) {
      uint64_t x, m;
      memcpy(&x, p, 8);
      if ((m = special8(x)) == 0) {
        p += 8;
        continue;
      }
      p += FIRST_SPECIAL(m);
    }
    else if (p >= S->end)
      return 0;
    if (*p == '"')
      break;
    if (*p < 0x20)
      return 0;
    if (*p == '\\') {
      if (p + 1 >= S->end || p[1] == '\0' || strchr("\"\\/bfnrt", p[1]) == NULL)
        return 0;   /* \u (and anything invalid): the full parser */
      *escaped = 1;
      p += 2;
      continue;
    }
    high |= *p++ & 0x80u;
  }
  if (high && !aigc_json_utf8_valid((const char *)start, (size_t)(p - start), NULL))
    return 0;
  *s = (const char *)start;
  *n = (size_t)(p - start);
  S->p = p + 1;
  return 1;
}

/* A non-negative integer of at most 18 digits (no fraction, exponent or
   leading zero): exactly what the parser makes an AIGC_JSON_INT of. */
static int scan_int (scanner *S, int64_t *out) {
  const unsigned char *p = S->p;
  int64_t v = 0;
  int digits = 0;
  if (p < S->end && *p == '0') {
    p++;
    digits = 1;
  }
  else
    while (p < S->end && *p >= '0' && *p <= '9') {
      if (++digits > 18)
        return 0;
      v = v * 10 + (*p++ - '0');
    }
  if (digits == 0 || (p < S->end && (*p == '.' || *p == 'e' || *p == 'E' || (*p >= '0' && *p <= '9'))))
    return 0;
  *out = v;
  S->p = p;
  return 1;
}

static int scan_literal (scanner *S, const char *word, size_t n) {
  if ((size_t)(S->end - S->p) < n || memcmp(S->p, word, n) != 0)
    return 0;
  S->p += n;
  return 1;
}

static int scan_scalar (scanner *S, scan_member *v) {
  ws(S);
  if (S->p >= S->end)
    return 0;
  switch (*S->p) {
    case '"': v->type = AIGC_JSON_STRING; return scan_string(S, &v->s, &v->slen, &v->escaped);
    case 'n': v->type = AIGC_JSON_NULL; return scan_literal(S, "null", 4);
    case 't': v->type = AIGC_JSON_TRUE; return scan_literal(S, "true", 4);
    case 'f': v->type = AIGC_JSON_FALSE; return scan_literal(S, "false", 5);
    default: v->type = AIGC_JSON_INT; return scan_int(S, &v->i);
  }
}

typedef int (*scan_inner_fn) (scanner *S);

/*
** An object's members into o: scalars, except the member named `inner`,
** whose value `scan_inner` reads. 0 (decline) on anything else, a
** repeated key or too many members.
*/
static int scan_members (scanner *S, scan_object *o, const char *inner, size_t inner_len,
                         scan_inner_fn scan_inner) {
  o->n = 0;
  if (!eat(S, '{'))
    return 0;
  if (eat(S, '}'))
    return 1;
  do {
    scan_member *v;
    size_t j;
    int escaped;
    if (o->n == SCAN_MAX_MEMBERS)
      return 0;
    v = &o->m[o->n++];
    ws(S);
    if (S->p >= S->end || *S->p != '"' || !scan_string(S, &v->key, &v->klen, &escaped) || escaped)
      return 0;
    for (j = 0; j + 1 < o->n; j++)
      if (o->m[j].klen == v->klen && memcmp(o->m[j].key, v->key, v->klen) == 0)
        return 0;   /* a repeated key: its last value counts (the full merge) */
    if (!eat(S, ':'))
      return 0;
    if (v->klen == inner_len && inner_len > 0 && memcmp(v->key, inner, inner_len) == 0) {
      v->type = AIGC_JSON_OBJECT;
      if (!scan_inner(S))
        return 0;
    }
    else if (!scan_scalar(S, v))
      return 0;
  } while (eat(S, ','));
  return eat(S, '}');
}

static int scan_delta (scanner *S) {
  S->have_delta = 1;
  return scan_members(S, &S->delta, NULL, 0, NULL);
}

/* "choices": an array of exactly one object. */
static int scan_choices (scanner *S) {
  S->have_choice = 1;
  return eat(S, '[') && scan_members(S, &S->choice, "delta", 5, scan_delta) && eat(S, ']');
}

#define IS_KEY(v, lit) ((v)->klen == sizeof(lit) - 1 && memcmp((v)->key, (lit), sizeof(lit) - 1) == 0)

/* The scanned scalar v equals the accumulated value av. */
static int same (const aigc_json_value *av, const scan_member *v) {
  if (av->type != v->type)
    return 0;
  if (v->type == AIGC_JSON_INT)
    return av->u.i == v->i;
  if (v->type == AIGC_JSON_STRING)
    return !v->escaped && av->len == v->slen && memcmp(av->u.s, v->s, v->slen) == 0;
  return 1;
}

/* The accumulated value of key in obj, or NULL. */
static const aigc_json_value *acc_get (const aigc_json_value *obj, const scan_member *v) {
  size_t pos = find(obj, v->key, v->klen);
  return pos == NOPOS ? NULL : &obj->u.members[pos].value;
}

/*
** Merging v into the accumulated object obj would change nothing: obj has
** the member, and v is null or the same scalar. At the top every member is
** replaced; inside a choice, strings append unless the key is one that
** replaces (accum.c's replaces()).
*/
static int unchanged (const aigc_json_value *obj, const scan_member *v, int top) {
  const aigc_json_value *av = acc_get(obj, v);
  if (av == NULL)
    return 0;
  if (v->type == AIGC_JSON_NULL)
    return 1;
  if (!same(av, v))
    return 0;
  return top || v->type != AIGC_JSON_STRING || IS_KEY(v, "id") || IS_KEY(v, "type")
         || IS_KEY(v, "name") || IS_KEY(v, "role") || IS_KEY(v, "finish_reason") || IS_KEY(v, "format");
}

/* The top level: nothing but "choices" may change. */
static int top_unchanged (const scanner *S, const aigc_json_value *root) {
  size_t i;
  for (i = 0; i < S->top.n; i++) {
    const scan_member *v = &S->top.m[i];
    if (IS_KEY(v, "choices") || IS_KEY(v, "obfuscation"))
      continue;
    if (IS_KEY(v, "error"))
      return 0;
    if (IS_KEY(v, "object")) {   /* the chunk object (another is skipped: accum.c) */
      if (v->type != AIGC_JSON_STRING || v->escaped || v->slen != 21
          || memcmp(v->s, "chat.completion.chunk", 21) != 0 || acc_get(root, v) == NULL)
        return 0;
    }
    else if (!unchanged(root, v, 1))
      return 0;
  }
  return 1;
}

/* The choice's index (0 when absent), or -1 to decline. */
static int choice_index (const scanner *S) {
  size_t i;
  for (i = 0; i < S->choice.n; i++)
    if (IS_KEY(&S->choice.m[i], "index")) {
      const scan_member *v = &S->choice.m[i];
      return v->type == AIGC_JSON_INT && v->i <= AIGC_ACCUM_MAX_INDEX ? (int)v->i : -1;
    }
  return 0;
}

/*
** The accumulated choice the chunk's choice merges into, all its scanned
** members but the delta unchanged; NULL to decline.
*/
static const aigc_json_value *acc_choice (const scanner *S, const aigc_json_value *root, int k) {
  size_t pos = FIND(root, "choices"), i;
  const aigc_json_value *choices, *c = NULL;
  if (pos == NOPOS || root->u.members[pos].value.type != AIGC_JSON_ARRAY)
    return NULL;
  choices = &root->u.members[pos].value;
  for (i = 0; i < choices->len && c == NULL; i++)
    if (choices->u.items[i].u.members[0].value.u.i == k)   /* (accum.c: index first) */
      c = &choices->u.items[i];
  if (c == NULL || c->len > SCAN_MAX_MEMBERS)
    return NULL;
  for (i = 0; i < S->choice.n; i++) {
    const scan_member *v = &S->choice.m[i];
    if (!IS_KEY(v, "index") && !IS_KEY(v, "obfuscation") && !IS_KEY(v, "delta")
        && !unchanged(c, v, 0))
      return NULL;
  }
  return c;
}

/*
** The accumulated content the delta's text appends to (*content NULL when
** the delta has no text), every other member of the delta unchanged.
** 0 to decline.
*/
static int delta_target (const scanner *S, const aigc_json_value *c, aigc_json_value **content,
                         const scan_member **text) {
  size_t pos = FIND(c, "message"), i;
  const aigc_json_value *msg;
  *content = NULL;
  *text = NULL;
  if (!S->have_delta)
    return 1;
  if (pos == NOPOS || c->u.members[pos].value.type != AIGC_JSON_OBJECT)
    return 0;
  msg = &c->u.members[pos].value;
  if (msg->len > SCAN_MAX_MEMBERS)
    return 0;
  for (i = 0; i < S->delta.n; i++) {
    const scan_member *v = &S->delta.m[i];
    if (IS_KEY(v, "obfuscation"))
      continue;
    if (IS_KEY(v, "content") && v->type == AIGC_JSON_STRING) {
      size_t at = FIND(msg, "content");
      if (at == NOPOS || msg->u.members[at].value.type != AIGC_JSON_STRING)
        return 0;
      *content = &msg->u.members[at].value;
      *text = v;
    }
    else if (!unchanged(msg, v, 0))
      return 0;
  }
  return 1;
}

/*
** The parse would not pass the limits the accumulator shares with the
** request's arena (max_json_values / max_json_containers: the full path
** reports those). Counted with one to spare, whether or not the parser
** counts the root: declining is always safe.
*/
static int within_limits (const scanner *S, const aigc_accum *a) {
  aigc_json_limits lim = aigc_json_limits_of(&a->limits);
  size_t values = 1 + S->top.n + 1 + S->choice.n + S->delta.n;
  size_t containers = 3 + (size_t)S->have_delta;
  return values + 1 <= lim.max_values && containers + 1 <= lim.max_containers;
}

/* Appends the text of v (decoding its escapes) to the accumulated string;
   0 when memory ran out (nothing changed then). */
static int append_text (aigc_json_value *str, const scan_member *v) {
  const char *p = v->s, *end = v->s + v->slen;
  char *d;
  size_t ncap;
  if (str->len + v->slen + 1 > str->cap) {
    char *s;
    if (v->slen > (size_t)-1 / 2 - str->len
        || next_cap(str->cap, str->len + v->slen + 1, 1, &ncap) != 0
        || (s = (char *)realloc(str->u.s, ncap)) == NULL)
      return 0;
    str->u.s = s;
    str->cap = ncap;
  }
  d = str->u.s + str->len;
  if (!v->escaped) {
    memcpy(d, p, v->slen);
    d += v->slen;
  }
  else
    while (p < end) {
      if (*p != '\\') {
        *d++ = *p++;
        continue;
      }
      switch (p[1]) {
        case 'b': *d++ = '\b'; break;
        case 'f': *d++ = '\f'; break;
        case 'n': *d++ = '\n'; break;
        case 'r': *d++ = '\r'; break;
        case 't': *d++ = '\t'; break;
        default: *d++ = p[1]; break;   /* " \ / */
      }
      p += 2;
    }
  str->len = (size_t)(d - str->u.s);
  str->u.s[str->len] = '\0';
  return 1;
}

/* The shaped result is clear already (accum.c's shaped_clear would do
   nothing), or there is none. */
static inline int shaped_is_clear (const aigc_accum *a) {
  const aigc_json_value *shaped;
  if (a->root.cap == 0)
    return 1;
  shaped = &a->root.u.members[a->root.cap - 1].value;
  return shaped->type == AIGC_JSON_NULL && shaped->len == 0 && shaped->cap == 0 && shaped->u.i == 0;
}

/* The merge itself: the text appended (if any), the shaped result made
   stale (accum.c's shaped_clear), the chunk counted. 0 on ENOMEM. */
static int apply (aigc_accum *a, aigc_json_value *content, const scan_member *piece, int k,
                  const char **text, size_t *text_len) {
  if (content != NULL) {
    size_t before = content->len;
    if (!append_text(content, piece))
      return 0;
    if (k == 0) {   /* the stream callback's text: choice 0's (response.c) */
      *text = content->u.s + before;
      *text_len = content->len - before;
    }
  }
  if (!shaped_is_clear(a))   /* (a call per chunk saved: it is already clear) */
    aigc_json_free(&a->root.u.members[a->root.cap - 1].value);
  a->error[0] = '\0';
  a->chunks++;
  return 1;
}

/* Adds the string slot of v (a string value in data) to the memo; 0 when
   there is no room. */
static int add_slot (aigc_accum_memo *m, const char *data, const scan_member *v) {
  size_t start = (size_t)(v->s - 1 - data), end = start + v->slen + 2;
  int i;
  if (m->nslots == AIGC_ACCUM_SCAN_SLOTS)
    return 0;
  for (i = m->nslots++; i > 0 && m->slot_start[i - 1] > start; i--) {   /* kept in order */
    m->slot_start[i] = m->slot_start[i - 1];
    m->slot_end[i] = m->slot_end[i - 1];
  }
  m->slot_start[i] = start;
  m->slot_end[i] = end;
  return 1;
}

static int add_padding_slots (aigc_accum_memo *m, const char *data, const scan_object *o) {
  size_t i;
  for (i = 0; i < o->n; i++)
    if (IS_KEY(&o->m[i], "obfuscation") && o->m[i].type == AIGC_JSON_STRING && !add_slot(m, data, &o->m[i]))
      return 0;
  return 1;
}

/* After the scanner merged the chunk data: keeps it as the template. */
static void remember (aigc_accum *a, const scanner *S, const char *data, size_t len, int k,
                      aigc_json_value *content, const scan_member *piece) {
  aigc_accum_memo *m = &a->memo;
  int i;
  m->valid = 0;
  m->nslots = 0;
  m->content_slot = -1;
  if ((content != NULL && !add_slot(m, data, piece)) || !add_padding_slots(m, data, &S->top)
      || !add_padding_slots(m, data, &S->choice) || !add_padding_slots(m, data, &S->delta))
    return;
  if (len > m->cap) {
    char *b = (char *)realloc(m->bytes, len);
    if (b == NULL)
      return;
    m->bytes = b;
    m->cap = len;
  }
  memcpy(m->bytes, data, len);
  m->len = len;
  for (i = 0; content != NULL && i < m->nslots; i++)
    if (m->slot_start[i] == (size_t)(piece->s - 1 - data))
      m->content_slot = i;
  m->k = k;
  m->content = content;
  m->valid = 1;
}

/*
** The common string of a slot, p just past its opening quote: plain ASCII
** (no quote, backslash, control byte or high byte before its closing
** quote). Returns that quote, or NULL for scan_string to decide (any
** other string, valid or not). Inline, with no out-parameters: a chunk's one or two slots cost
** a few words each, not a call of scan_string.
*/
static const unsigned char *plain_string_end (const unsigned char *p, const unsigned char *end) {
  while (end - p >= 8) {
    uint64_t x, m;
    memcpy(&x, p, 8);
    if ((m = special8(x)) != 0) {
      p += FIRST_SPECIAL(m);
      return *p == '"' ? p : NULL;
    }
    p += 8;
  }
  for (; p < end; p++)   /* (the padding ends a chunk: its last bytes) */
    if (*p == '"')
      return p;
    else if (*p < 0x20 || *p == '\\' || *p >= 0x80)
      return NULL;
  return NULL;
}

/*
** The template's last slot (OpenAI's padding, or the bench's content): the
** chunk's last bytes must be the template's after that slot, so its string
** can only close at q. Checks the bytes from p to q are plain 8 at a time,
** the last word read ending at q and only its last bytes looked at (no
** byte-by-byte loop over the padding's end). Returns q, or NULL for
** scan_string to decide (a string with escapes, a chunk of another shape:
** the tail's compare declines those).
*/
static const unsigned char *plain_last_string (const unsigned char *p, const unsigned char *q,
                                               const unsigned char *data, const unsigned char *end) {
  uint64_t x;
  if (!HAVE_LAST_BYTES || q < p || q - data < 8)
    return plain_string_end(p, end);
  if (*q != '"')
    return NULL;
  for (; q - p > 8; p += 8) {
    memcpy(&x, p, 8);
    if (special8(x) != 0)
      return NULL;
  }
  if (p < q) {
    memcpy(&x, q - 8, 8);   /* (a special byte before p can only add flags: then NULL) */
    if ((special8(x) & LAST_BYTES(q - p)) != 0)
      return NULL;
  }
  return q;
}

/* memcmp(a, b, n) == 0, the few bytes after a chunk's last slot (`}`,
   `"}]}`) compared here rather than through a call. */
static int same_bytes (const char *a, const char *b, size_t n) {
  if (n > 8)
    return memcmp(a, b, n) == 0;
  while (n > 0 && *a == *b)
    a++, b++, n--;
  return n == 0;
}

/*
** A chunk that is the template with other strings in its slots: the same
** JSON but for those strings, so the same merge but for the text. 0 (and
** nothing changed) when it is not. Each compare takes the bytes up to and
** including a slot's opening quote; only the content slot's string is
** kept (the padding's need only be a valid string).
*/
static int scan_memo (aigc_accum *a, const char *data, size_t len, const char **text,
                      size_t *text_len) {
  const aigc_accum_memo *m = &a->memo;
  const unsigned char *p = (const unsigned char *)data, *end = p + len;
  scanner S;
  scan_member piece;
  size_t from = 0, n;
  int i, last = m->nslots - 1;
  piece.s = NULL;
  piece.slen = 0;
  piece.escaped = 0;
  S.end = end;
  for (i = 0; i <= last; i++) {
    const unsigned char *q;
    n = m->slot_start[i] + 1 - from;
    if ((size_t)(end - p) < n || !same_bytes((const char *)p, m->bytes + from, n))
      return 0;
    p += n;
    from = m->slot_end[i];
    if (i == last && m->len - from < (size_t)(end - p))
      q = plain_last_string(p, end - (m->len - from) - 1, (const unsigned char *)data, end);
    else
      q = plain_string_end(p, end);
    if (q != NULL) {
      if (i == m->content_slot) {
        piece.s = (const char *)p;
        piece.slen = (size_t)(q - p);
      }
      p = q + 1;
    }
    else {
      scan_member pad, *v = i == m->content_slot ? &piece : &pad;
      S.p = p - 1;
      if (!scan_string(&S, &v->s, &v->slen, &v->escaped))
        return 0;
      p = S.p;
    }
  }
  n = m->len - from;
  if ((size_t)(end - p) != n || !same_bytes((const char *)p, m->bytes + from, n))
    return 0;
  if (piece.s != NULL && !piece.escaped && m->content->len + piece.slen < m->content->cap
      && shaped_is_clear(a)) {   /* apply's work for the common chunk, inline */
    aigc_json_value *str = m->content;
    memcpy(str->u.s + str->len, piece.s, piece.slen);
    if (m->k == 0) {   /* the stream callback's text: choice 0's (response.c) */
      *text = str->u.s + str->len;
      *text_len = piece.slen;
    }
    str->len += piece.slen;
    str->u.s[str->len] = '\0';
    a->error[0] = '\0';
    a->chunks++;
    return 1;
  }
  return apply(a, m->content, &piece, m->k, text, text_len);
}

int aigc_accum_scan (aigc_accum *a, const char *data, size_t len, const char **text,
                     size_t *text_len) {
  scanner S;
  const aigc_json_value *c;
  aigc_json_value *content;
  const scan_member *piece;
  int k;
  *text = NULL;
  *text_len = 0;
  if (a->kind != AIGC_ACCUM_CHAT || a->root.len > SCAN_MAX_MEMBERS)
    return 0;
  if (a->memo.valid && scan_memo(a, data, len, text, text_len))
    return 1;
  if (FIND(&a->root, "choices") == NOPOS)
    return 0;   /* nothing to merge into yet (the first chunk): acc_choice declines */
  S.p = (const unsigned char *)data;
  S.end = S.p + len;
  S.have_choice = S.have_delta = 0;
  S.top.n = S.choice.n = S.delta.n = 0;   /* (a choice may have no delta: within_limits and remember count it) */
  if (!scan_members(&S, &S.top, "choices", 7, scan_choices))
    return 0;
  ws(&S);
  if (S.p != S.end || !S.have_choice || !within_limits(&S, a) || !top_unchanged(&S, &a->root)
      || (k = choice_index(&S)) < 0 || (c = acc_choice(&S, &a->root, k)) == NULL
      || !delta_target(&S, c, &content, &piece))
    return 0;
  if (!apply(a, content, piece, k, text, text_len))
    return 0;
  remember(a, &S, data, len, k, content, piece);
  return 1;
}
