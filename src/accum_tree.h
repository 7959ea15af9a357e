/*
** accum_tree.h — what the two halves of the accumulator share (accum.c
** merges chunks, accum_shape.c shapes the result): small helpers on owned
** json.h trees, static inline (both use them in their loops), and the
** slot of the shaped result. Private to accum*.c.
*/
#ifndef AIGC_ACCUM_TREE_H
#define AIGC_ACCUM_TREE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accum.h"

#define NOPOS ((size_t)-1)

static inline const char *result_object (aigc_accum_kind kind) {
  return kind == AIGC_ACCUM_CHAT ? "chat.completion" : "text_completion";
}

static inline int key_is (const aigc_json_member *m, const char *key) {
  size_t n = strlen(key);
  return m->key_len == n && memcmp(m->key, key, n) == 0;
}

/* Position of the last member named key[0..n), or NOPOS. */
static inline size_t find (const aigc_json_value *obj, const char *key, size_t n) {
  size_t i;
  for (i = obj->len; i-- > 0; ) {
    const aigc_json_member *m = &obj->u.members[i];
    if (m->key_len == n && memcmp(m->key, key, n) == 0)
      return i;
  }
  return NOPOS;
}

#define FIND(obj, lit)  find((obj), (lit), sizeof(lit) - 1)

/*
** An index in 0..AIGC_ACCUM_MAX_INDEX from an "index" member: the index,
** -1 if it is absent or null (the caller decides the default), -2 if it
** is anything else.
*/
static inline int index_of (const aigc_json_value *obj) {
  const aigc_json_value *iv = aigc_json_get(obj, "index");
  if (iv == NULL || iv->type == AIGC_JSON_NULL)
    return -1;
  if (iv->type != AIGC_JSON_INT || iv->u.i < 0 || iv->u.i > AIGC_ACCUM_MAX_INDEX)
    return -2;
  return (int)iv->u.i;
}

/*
** AIGC_ACCUM_BADSHAPE, with err[0..n) saying that what's "index" (obj's,
** which index_of() read as -2) is not an integer in 0..127, and naming
** it: a server's 1e300 or "3" told apart from its 128.
*/
static inline int bad_index (char *err, size_t n, const char *what, const aigc_json_value *obj) {
  const aigc_json_value *iv = aigc_json_get(obj, "index");
  char num[32];
  int len = 0;
  const char *s = num;
  if (iv->type == AIGC_JSON_INT)
    len = aigc_json_format_int(num, iv->u.i);
  else if (iv->type == AIGC_JSON_FLOAT)   /* (finite: the parser refuses others) */
    len = aigc_json_format_double(num, iv->u.d);
  else if (iv->type == AIGC_JSON_STRING)
    for (s = iv->u.s, len = iv->len > 20 ? 20 : (int)iv->len;   /* (whole UTF-8 characters) */
         (size_t)len < iv->len && len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80; len--) {}
  else
    s = iv->type == AIGC_JSON_TRUE ? "true" : iv->type == AIGC_JSON_FALSE ? "false"
      : iv->type == AIGC_JSON_ARRAY ? "an array" : "an object", len = (int)strlen(s);
  snprintf(err, n, "%s \"index\" %s%.*s%s is not an integer in 0..127", what,
           iv->type == AIGC_JSON_STRING ? "\"" : "", len, s,
           iv->type == AIGC_JSON_STRING ? (iv->len > 20 ? "...\"" : "\"") : "");
  return AIGC_ACCUM_BADSHAPE;
}

/* An empty value of the type: {}, [] or a scalar with no payload. */
static inline void empty (aigc_json_value *v, aigc_json_type type) {
  v->type = type;
  v->len = v->cap = 0;
  if (type == AIGC_JSON_OBJECT)
    v->u.members = NULL;
  else if (type == AIGC_JSON_ARRAY)
    v->u.items = NULL;
  else
    v->u.i = 0;
}

static inline int new_string (aigc_json_value *v, const char *s) {
  size_t n = strlen(s);
  empty(v, AIGC_JSON_NULL);
  if ((v->u.s = (char *)malloc(n + 1)) == NULL)
    return -1;
  memcpy(v->u.s, s, n + 1);
  v->type = AIGC_JSON_STRING;
  v->len = n;
  v->cap = n + 1;
  return 0;
}
/* New capacity for at least `need` elements of size elem, doubling. */
static inline int next_cap (size_t cap, size_t need, size_t elem, size_t *ncap) {
  size_t c = cap < 4 ? 4 : cap;
  while (c < need) {
    if (c > ((size_t)-1 / 2) / elem)
      return -1;
    c *= 2;
  }
  if (c > (size_t)-1 / elem)
    return -1;
  *ncap = c;
  return 0;
}

static inline int items_reserve (aigc_json_value *arr, size_t extra) {
  size_t ncap;
  aigc_json_value *items;
  if (extra > (size_t)-1 - arr->len)
    return -1;
  if (arr->len + extra <= arr->cap)
    return 0;
  if (next_cap(arr->cap, arr->len + extra, sizeof(aigc_json_value), &ncap) != 0)
    return -1;
  items = (aigc_json_value *)realloc(arr->u.items, ncap * sizeof(aigc_json_value));
  if (items == NULL)
    return -1;
  arr->u.items = items;
  arr->cap = ncap;
  return 0;
}

/*
** The slot where the shaped result is kept (accum.c: past root's last
** member), made if needed; NULL on ENOMEM.
*/
aigc_json_value *aigc_accum_result_slot (aigc_accum *a);

#endif
