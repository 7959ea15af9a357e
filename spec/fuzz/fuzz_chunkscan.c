/*
** fuzz_chunkscan.c — libFuzzer harness for the chat chunk scanner
** (src/accum_scan.c) against the full path (aigc_json_parse +
** aigc_accum_add), with the oracle of spec/c/scan_oracle.h: whatever the
** chunks, the scanner merges a chunk only as the full path would (the
** callback's text and the merged tree byte for byte the same) or declines
** it.
**
** The input is a stream of chunks, one a line, after a fixed first chunk
** that opens choice 0 (role "assistant", content ""), so that mutated text
** chunks reach the scanner's merge and its template; an input starting with
** '!' runs with small limits (max_json_values 16, containers 5) instead.
**
**   make fuzz  (or: clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc
**     -o fuzz_chunkscan spec/fuzz/fuzz_chunkscan.c src/buf.c src/json.c src/jsonout.c
**     src/accum_keys.c src/accum.c src/accum_shape.c src/accum_scan.c)
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../c/scan_oracle.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const char first[] =
  "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
  "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},"
  "\"logprobs\":null,\"finish_reason\":null}]}";

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  scan_oracle o;
  size_t start = 0, i;
  oracle_init(&o);
  if (size > 0 && data[0] == '!') {
    oracle_limits(&o, 16, 5);
    start = 1;
  }
  oracle_chunk(&o, first, sizeof first - 1);
  for (i = start; i <= size; i++)
    if (i == size || data[i] == '\n') {
      oracle_chunk(&o, (const char *)data + start, i - start);
      start = i + 1;
    }
  oracle_finish(&o);
  if (o.failures != 0) {
    fprintf(stderr, "fuzz_chunkscan: %s\n", o.failure);
    abort();
  }
  oracle_free(&o);
  return 0;
}
