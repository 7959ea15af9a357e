/*
** fuzz_json.c — libFuzzer harness for src/json.c and src/accum.c.
**
** The input is parsed as JSON. A failure must be clean (an offset inside
** the input, a message, a null result). A success must survive the
** properties the rest of the code relies on:
**   - write -> parse -> write is a fixed point, and a deep copy writes the
**     same text;
**   - as a stream for both accumulator kinds (an object is one chunk, fed
**     twice; an array is a stream of chunks): a refused chunk leaves the
**     merged state unchanged, finish works and is repeatable, and calling
**     finish between adds changes nothing about the end result; with
**     small value limits, a chunk refused for them (LIMIT) leaves the state
**     unchanged too, and the live counts never pass the limits.
** The same input parsed under small limits fails cleanly (AIGC_JSON_ELIMIT with an
** offset and a message) or succeeds. Independently, the raw bytes go
** through aigc_json_utf8_valid and
** aigc_json_write_string: both must agree, and a written string must parse back
** to exactly the original bytes.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accum.h"
#include "json.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void fail (const char *what) {
  fprintf(stderr, "fuzz_json: %s\n", what);
  abort();
}

static void write_or_die (aigc_buf *b, const aigc_json_value *v) {
  aigc_buf_clear(b);
  if (aigc_json_write(b, v) != 0)
    fail("aigc_json_write ran out of memory");
}

static int same_text (const aigc_buf *x, const aigc_buf *y) {
  return x->len == y->len && (x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
}

/* The chunks of a stream: an object is one chunk given twice, an array's
** items are the chunks, anything else is one (refused) chunk. */
static size_t nchunks (const aigc_json_value *v) {
  if (v->type == AIGC_JSON_ARRAY)
    return v->len;
  return v->type == AIGC_JSON_OBJECT ? 2 : 1;
}

static const aigc_json_value *chunk_at (const aigc_json_value *v, size_t i) {
  return v->type == AIGC_JSON_ARRAY ? &v->u.items[i] : v;
}

static void check_stream (const aigc_json_value *v, aigc_accum_kind kind,
                          size_t small) {
  aigc_accum plain, eager, tight;
  aigc_buf before = AIGC_BUF_INIT, after = AIGC_BUF_INIT;
  aigc_buf r1 = AIGC_BUF_INIT, r2 = AIGC_BUF_INIT;
  const aigc_json_value *res, *again;
  size_t i, n = nchunks(v);
  aigc_accum_init(&plain, kind);
  aigc_accum_init(&eager, kind);
  aigc_accum_init(&tight, kind);
  tight.limits.max_values = 8 + small % 64;
  tight.limits.max_containers = 2 + small % 16;
  for (i = 0; i < n; i++) {
    const aigc_json_value *chunk = chunk_at(v, i);
    size_t count = plain.chunks;
    int rc, rc2;
    write_or_die(&before, &plain.root);
    rc = aigc_accum_add(&plain, chunk);
    if (rc == AIGC_ACCUM_NOMEM)
      fail("accumulator ran out of memory");
    if (rc == AIGC_ACCUM_BADSHAPE) {
      write_or_die(&after, &plain.root);
      if (!same_text(&before, &after) || plain.chunks != count)
        fail("a refused chunk changed the merged state");
      if (plain.error[0] == '\0')
        fail("BADSHAPE without a message");
    }
    /* the same chunk into an accumulator that is finished after every add */
    rc2 = aigc_accum_add(&eager, chunk);
    if (rc2 != rc)
      fail("finish between adds changed whether a chunk is accepted");
    if (aigc_accum_finish(&eager) == NULL)
      fail("finish ran out of memory");
    /* the same chunk under small limits: refused whole, or within them */
    count = tight.chunks;
    write_or_die(&before, &tight.root);
    rc = aigc_accum_add(&tight, chunk);
    if (rc == AIGC_ACCUM_NOMEM)
      fail("accumulator ran out of memory");
    if (rc == AIGC_ACCUM_LIMIT) {
      write_or_die(&after, &tight.root);
      if (!same_text(&before, &after) || tight.chunks != count || tight.error[0] == '\0')
        fail("a chunk refused for the limits changed the merged state");
    }
    if (tight.values > tight.limits.max_values ||
        tight.containers > tight.limits.max_containers)
      fail("the merged tree passed its limits");
  }
  res = aigc_accum_finish(&plain);
  again = aigc_accum_finish(&plain);
  if (res == NULL || again != res || res->type != AIGC_JSON_OBJECT)
    fail("finish is not repeatable");
  write_or_die(&r1, res);
  write_or_die(&r2, aigc_accum_finish(&eager));
  if (!same_text(&r1, &r2))
    fail("finish between adds changed the result");
  write_or_die(&before, &plain.root);
  write_or_die(&after, &eager.root);
  if (!same_text(&before, &after))
    fail("finish between adds changed the merged state");
  (void)aigc_accum_incomplete(&plain);
  if (aigc_json_get(res, "choices") == NULL || aigc_json_get(res, "usage") == NULL ||
      aigc_json_get(res, "object") == NULL)
    fail("a finished result lacks choices, usage or object");
  aigc_accum_free(&plain);
  aigc_accum_free(&eager);
  aigc_accum_free(&tight);
  aigc_buf_free(&before);
  aigc_buf_free(&after);
  aigc_buf_free(&r1);
  aigc_buf_free(&r2);
}

/* The raw bytes as a string: validation and escaping agree and invert. */
static void check_string (const char *s, size_t size) {
  aigc_buf out = AIGC_BUF_INIT;
  aigc_json_arena a;
  aigc_json_value v;
  aigc_json_error err;
  size_t bad1 = 0, bad2 = 0;
  int valid = aigc_json_utf8_valid(s, size, &bad1);
  int rc = aigc_json_write_string(&out, s, size, &bad2);
  if (rc == -1)
    fail("aigc_json_write_string ran out of memory");
  if (valid != (rc == 0) || (!valid && bad1 != bad2) || (!valid && out.len != 0))
    fail("aigc_json_utf8_valid and aigc_json_write_string disagree");
  if (valid) {
    aigc_json_arena_init(&a);
    if (aigc_json_parse(&a, out.data, out.len, 0, &v, &err) != 0)
      fail("an escaped string does not parse");
    if (v.type != AIGC_JSON_STRING || v.len != size ||
        (size > 0 && memcmp(v.u.s, s, size) != 0))
      fail("an escaped string does not read back as the original bytes");
    aigc_json_arena_free(&a);
  }
  aigc_buf_free(&out);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  aigc_json_arena a, b;
  aigc_json_value v, v2, c;
  aigc_json_error err;
  aigc_buf w1 = AIGC_BUF_INIT, w2 = AIGC_BUF_INIT;
  int rc;
  aigc_json_arena_init(&a);
  aigc_json_arena_init(&b);
  rc = aigc_json_parse(&a, text, size, 0, &v, &err);
  if (rc == -2)
    fail("parser ran out of memory");
  if (rc != 0) {
    if (rc != -1 || err.offset > size || err.message[0] == '\0' ||
        v.type != AIGC_JSON_NULL)
      fail("a parse error is not reported cleanly");
  }
  else {
    write_or_die(&w1, &v);
    if (aigc_json_parse(&b, w1.data, w1.len, 0, &v2, &err) != 0)
      fail("written JSON does not parse");
    write_or_die(&w2, &v2);
    if (!same_text(&w1, &w2))
      fail("write -> parse -> write is not a fixed point");
    if (aigc_json_copy(&c, &v) != 0)
      fail("aigc_json_copy ran out of memory");
    write_or_die(&w2, &c);
    if (!same_text(&w1, &w2))
      fail("a copy writes differently");
    aigc_json_free(&c);
    if (c.type != AIGC_JSON_NULL)
      fail("aigc_json_free did not reset the value");
    check_stream(&v, AIGC_ACCUM_CHAT, size);
    check_stream(&v, AIGC_ACCUM_COMPLETION, size / 3);
  }
  /* a shallow depth limit on the same input: clean either way */
  aigc_json_arena_reset(&a);
  rc = aigc_json_parse(&a, text, size, 3, &v, &err);
  if (rc == -2 || (rc == -1 && (err.offset > size || err.message[0] == '\0')))
    fail("a depth-limited parse did not end cleanly");
  /* small value limits on the same input: clean either way */
  aigc_json_arena_reset(&a);
  a.limits.max_values = 1 + size % 23;
  a.limits.max_containers = 1 + size % 7;
  rc = aigc_json_parse(&a, text, size, 0, &v, &err);
  if (rc == -2 || (rc < 0 && (err.offset > size || err.message[0] == '\0' ||
                              v.type != AIGC_JSON_NULL)))
    fail("a parse under small limits did not end cleanly");
  if (rc == 0 && aigc_json_parse(&b, text, size, 0, &v2, &err) != 0)
    fail("a document within small limits fails with the defaults");
  a.limits.max_values = a.limits.max_containers = 0;
  check_string(text, size);
  aigc_json_arena_free(&a);
  aigc_json_arena_free(&b);
  aigc_buf_free(&w1);
  aigc_buf_free(&w2);
  return 0;
}
