/*
** scan_oracle.h — the differential oracle of the chunk scanner
** (src/accum_scan.c), shared by spec/c/accum_scan_test.c and
** spec/fuzz/fuzz_chunkscan.c.
**
** Two accumulators take the same chunks: `fast` as a chat request does
** (aigc_accum_scan first; the full parse and aigc_accum_add when it
** declines), `full` always through the parser and aigc_accum_add. After
** every chunk:
**   - when the scanner merged it, the parser must accept the chunk and
**     aigc_accum_add must merge it (counted), and the text the scanner
**     gives the callback must be the one response.c's chunk_delta reads
**     from the parsed tree (choice 0's delta.content when a string);
**   - when it declined, `fast` went the full way: both got the same return;
**   - the two merged trees write the same JSON, byte for byte;
** and at the end both shaped results (aigc_accum_finish) are the same.
** A mismatch calls oracle_fail (the ctest counts it, the fuzzer aborts).
*/
#ifndef AIGC_SCAN_ORACLE_H
#define AIGC_SCAN_ORACLE_H

#include <stdio.h>
#include <string.h>

#include "accum.h"

typedef struct scan_oracle {
  aigc_accum fast, full;
  aigc_json_arena arena;
  aigc_buf a, b;
  size_t scanned;      /* chunks the scanner merged */
  size_t failures;
  const char *failure; /* the first failure's description */
} scan_oracle;

static void oracle_init (scan_oracle *o) {
  memset(o, 0, sizeof *o);
  aigc_accum_init(&o->fast, AIGC_ACCUM_CHAT);
  aigc_accum_init(&o->full, AIGC_ACCUM_CHAT);
  aigc_json_arena_init(&o->arena);
}

/* The limits a request gives its arena and its accumulator alike. */
static void oracle_limits (scan_oracle *o, size_t max_values, size_t max_containers) {
  o->arena.limits.max_values = o->fast.limits.max_values = o->full.limits.max_values = max_values;
  o->arena.limits.max_containers = o->fast.limits.max_containers = o->full.limits.max_containers
    = max_containers;
}

static void oracle_free (scan_oracle *o) {
  aigc_accum_free(&o->fast);
  aigc_accum_free(&o->full);
  aigc_json_arena_free(&o->arena);
  aigc_buf_free(&o->a);
  aigc_buf_free(&o->b);
}

static void oracle_fail (scan_oracle *o, const char *what, const char *data, size_t len) {
  o->failures++;
  if (o->failure == NULL)
    o->failure = what;
  fprintf(stderr, "  scan oracle: %s: %.*s\n", what, (int)(len > 300 ? 300 : len), data);
}

/* response.c's chunk_delta: choice 0's delta.content, a string, or NULL. */
static const aigc_json_value *oracle_delta (const aigc_json_value *chunk) {
  const aigc_json_value *choices = aigc_json_get(chunk, "choices"), *c = NULL, *d;
  size_t i;
  if (choices == NULL || choices->type != AIGC_JSON_ARRAY)
    return NULL;
  for (i = 0; i < choices->len && c == NULL; i++) {
    const aigc_json_value *idx = aigc_json_get(&choices->u.items[i], "index");
    if (idx == NULL || (idx->type == AIGC_JSON_INT && idx->u.i == 0))
      c = &choices->u.items[i];
  }
  d = c ? aigc_json_get(c, "delta") : NULL;
  d = d ? aigc_json_get(d, "content") : NULL;
  return (d != NULL && d->type == AIGC_JSON_STRING) ? d : NULL;
}

/* The full path: parse, then add. Returns aigc_accum_add's code, or 100 +
   the parser's (negative) code when the chunk is not JSON. */
static int oracle_full_add (scan_oracle *o, aigc_accum *acc, const char *data, size_t len,
                            aigc_json_value *v) {
  aigc_json_error err;
  int rc;
  aigc_json_arena_reset(&o->arena);
  rc = aigc_json_parse(&o->arena, data, len, 0, v, &err);
  if (rc != AIGC_JSON_OK)
    return 100 + rc;
  return aigc_accum_add(acc, v);
}

static int oracle_same_tree (scan_oracle *o, const aigc_json_value *x, const aigc_json_value *y) {
  aigc_buf_clear(&o->a);
  aigc_buf_clear(&o->b);
  if (aigc_json_write(&o->a, x) != 0 || aigc_json_write(&o->b, y) != 0)
    return 0;
  return o->a.len == o->b.len && memcmp(o->a.data, o->b.data, o->a.len) == 0;
}

/* One chunk through both accumulators, checked. */
static void oracle_chunk (scan_oracle *o, const char *data, size_t len) {
  const char *text;
  size_t text_len, full_chunks = o->full.chunks;
  aigc_json_value v;
  int scanned = aigc_accum_scan(&o->fast, data, len, &text, &text_len);
  int rc_full = oracle_full_add(o, &o->full, data, len, &v);
  if (scanned) {
    const aigc_json_value *d;
    o->scanned++;
    if (rc_full != AIGC_ACCUM_OK || o->full.chunks != full_chunks + 1) {
      oracle_fail(o, "the scanner merged a chunk the full path refuses or skips", data, len);
      return;
    }
    d = oracle_delta(&v);
    if ((d == NULL) != (text == NULL)
        || (d != NULL && (d->len != text_len || memcmp(d->u.s, text, text_len) != 0)))
      oracle_fail(o, "the callback's text differs", data, len);
  }
  else {
    aigc_json_value w;
    int rc_fast = oracle_full_add(o, &o->fast, data, len, &w);
    if (rc_fast != rc_full)
      oracle_fail(o, "the full paths returned differently", data, len);
  }
  if (o->fast.chunks != o->full.chunks || !oracle_same_tree(o, &o->fast.root, &o->full.root))
    oracle_fail(o, "the merged trees differ", data, len);
}

/* At the end: the shaped results are the same. */
static void oracle_finish (scan_oracle *o) {
  const aigc_json_value *x = aigc_accum_finish(&o->fast), *y = aigc_accum_finish(&o->full);
  if (x == NULL || y == NULL || !oracle_same_tree(o, x, y))
    oracle_fail(o, "the shaped results differ", "", 0);
}

#endif
