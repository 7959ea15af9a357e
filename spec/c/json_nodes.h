/*
** json_nodes.h — counts the values and containers of a parsed JSON tree:
** the oracle of what the limits must have been charged for (the Responses
** accumulator's unit test, spec/c/raccum_test.c, and its fuzzer,
** spec/fuzz/fuzz_raccum.c).
*/
#ifndef AIGC_SPEC_JSON_NODES_H
#define AIGC_SPEC_JSON_NODES_H

#include <stddef.h>

#include "json.h"

static void count_nodes (const aigc_json_value *v, size_t *values, size_t *containers) {
  size_t i;
  (*values)++;
  if (v->type == AIGC_JSON_ARRAY || v->type == AIGC_JSON_OBJECT)
    (*containers)++;
  for (i = 0; v->type == AIGC_JSON_ARRAY && i < v->len; i++)
    count_nodes(&v->u.items[i], values, containers);
  for (i = 0; v->type == AIGC_JSON_OBJECT && i < v->len; i++)
    count_nodes(&v->u.members[i].value, values, containers);
}

#endif
