/*
** fuzz_raccum.c — libFuzzer harness for the Responses stream accumulator
** (src/raccum.c).
**
** The input is a stream of events, one JSON document a line (lines that
** are not JSON are skipped, as the request would fail on them). The
** oracle, after every event:
**   - an event refused with BADSHAPE, LIMIT or SEQUENCE left the tree as it
**     was (its JSON is byte for byte the same);
**   - the tree is an object, and writes as JSON that parses back;
**   - the limits were charged for every node of it (a->values and
**     a->containers cover the tree, the slots events made included);
**   - aigc_raccum_output_text runs on it;
** and at the end a second accumulator fed the same events gives the same
** tree (the merge depends on nothing but the events), and a third with
** small limits (from the input's first byte) never passes them. ASan,
** UBSan and LeakSanitizer catch the rest.
**
**   make fuzz  (or: clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc
**     -o fuzz_raccum spec/fuzz/fuzz_raccum.c src/buf.c src/json.c src/jsonout.c src/raccum.c)
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raccum.h"
#include "../c/json_nodes.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void die (const char *what) {
  fprintf(stderr, "fuzz_raccum: %s\n", what);
  abort();
}

static int count_text (void *ud, const char *s, size_t n) {
  (void)s;
  *(size_t *)ud += n;
  return 0;
}

static void tree_json (const aigc_raccum *a, aigc_buf *b) {
  aigc_buf_clear(b);
  if (aigc_json_write(b, &a->root) != 0)
    die("out of memory");
}

/* Feeds every event line to a; checks the invariants after each. */
static void feed (aigc_raccum *a, const uint8_t *data, size_t size) {
  aigc_json_arena arena;
  aigc_buf before = AIGC_BUF_INIT, after = AIGC_BUF_INIT;
  size_t start = 0, i;
  aigc_json_arena_init(&arena);
  for (i = 0; i <= size; i++) {
    aigc_json_value v, back;
    aigc_json_error err;
    size_t text = 0, nodes, nests;
    int rc;
    if (i < size && data[i] != '\n')
      continue;
    aigc_json_arena_reset(&arena);
    if (aigc_json_parse(&arena, (const char *)data + start, i - start, 0, &v, &err) != 0) {
      start = i + 1;
      continue;
    }
    start = i + 1;
    tree_json(a, &before);
    rc = aigc_raccum_add(a, "response.output_text.delta", 26, &v);
    tree_json(a, &after);
    if ((rc == AIGC_RACCUM_BADSHAPE || rc == AIGC_RACCUM_LIMIT || rc == AIGC_RACCUM_SEQUENCE)
        && (before.len != after.len || memcmp(before.data, after.data, before.len) != 0))
      die("a refused event changed the tree");
    if (rc != AIGC_RACCUM_OK && a->error[0] == '\0')
      die("an error without a reason");
    if (a->root.type != AIGC_JSON_OBJECT)
      die("the tree is not an object");
    nodes = nests = 0;
    count_nodes(&a->root, &nodes, &nests);
    if (nodes - 1 > a->values || nests - 1 > a->containers)   /* (the root is free) */
      die("the tree holds nodes the limits were not charged for");
    aigc_json_arena_reset(&arena);
    if (aigc_json_parse(&arena, after.data, after.len, 100000, &back, &err) != 0)
      die("the tree does not write as JSON");
    aigc_raccum_output_text(&a->root, count_text, &text);
  }
  aigc_json_arena_free(&arena);
  aigc_buf_free(&before);
  aigc_buf_free(&after);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  aigc_raccum a, b, small;
  aigc_buf ja = AIGC_BUF_INIT, jb = AIGC_BUF_INIT;
  aigc_raccum_init(&a);
  aigc_raccum_init(&b);
  aigc_raccum_init(&small);
  feed(&a, data, size);
  feed(&b, data, size);
  tree_json(&a, &ja);
  tree_json(&b, &jb);
  if (ja.len != jb.len || memcmp(ja.data, jb.data, ja.len) != 0)
    die("the same events gave two trees");
  small.limits.max_values = size > 0 ? (size_t)data[0] % 64 + 1 : 1;
  small.limits.max_containers = size > 0 ? (size_t)data[0] % 16 + 1 : 1;
  feed(&small, data, size);
  if (small.values > small.limits.max_values || small.containers > small.limits.max_containers)
    die("past the limits");
  aigc_raccum_free(&a);
  aigc_raccum_free(&b);
  aigc_raccum_free(&small);
  aigc_buf_free(&ja);
  aigc_buf_free(&jb);
  return 0;
}
