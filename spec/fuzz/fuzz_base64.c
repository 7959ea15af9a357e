/*
** fuzz_base64.c — libFuzzer harness for src/base64.c.
**
** The input is text to decode. The oracle: a deliberately naive reference
** decoder below (strip whitespace, check the alphabet and the padding,
** then decode sextet by sextet) that shares no code with src/base64.c
** must agree on accept/refuse, on the bytes, and on the offset of the
** first bad character when it is a character outside the alphabet; the
** bytes never exceed aigc_base64_max. Then the input's bytes are decoded
** as float32 values and compared with a memcpy on this (little-endian)
** host. ASan and UBSan catch the rest.
**
**   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
**     -std=c99 -D_POSIX_C_SOURCE=200809L -Isrc -o fuzz_base64 \
**     spec/fuzz/fuzz_base64.c src/base64.c
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int value_of (int c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

static int is_space (int c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Returns the decoded length, or -1. */
static long reference (const uint8_t *in, size_t n, uint8_t *out) {
  char *s = (char *)malloc(n + 1);
  size_t m = 0, i, pads = 0, data;
  long result;
  for (i = 0; i < n; i++)
    if (!is_space(in[i]))
      s[m++] = (char)in[i];
  while (pads < m && s[m - 1 - pads] == '=')
    pads++;
  data = m - pads;
  for (i = 0; i < data; i++)
    if (value_of((unsigned char)s[i]) < 0) {
      free(s);
      return -1;
    }
  /* padding: only to complete the last quantum, never more than it needs */
  if (data % 4 == 1 || (pads > 0 && (data % 4 == 0 || data % 4 + pads > 4))) {
    free(s);
    return -1;
  }
  for (i = 0; i < data; i++) {
    unsigned bits = (unsigned)value_of((unsigned char)s[i]);
    size_t bitpos = i * 6;   /* where these 6 bits go in the output stream */
    size_t k;
    for (k = 0; k < 6; k++) {
      size_t b = bitpos + k;
      if (b / 8 >= data * 6 / 8)
        break;
      if (((bits >> (5 - k)) & 1) != 0)
        out[b / 8] = (uint8_t)(out[b / 8] | (0x80 >> (b % 8)));
    }
  }
  result = (long)(data * 6 / 8);
  free(s);
  return result;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  uint8_t *got = (uint8_t *)malloc(aigc_base64_max(size) + 1);
  uint8_t *want = (uint8_t *)calloc(size + 1, 1);
  size_t len = 0, bad = 0, i;
  int rc = aigc_base64_decode((const char *)data, size, got, &len, &bad);
  long wl = reference(data, size, want);
  if ((rc == 0) != (wl >= 0))
    abort();
  if (rc == 0 && ((size_t)wl != len || memcmp(got, want, len) != 0 || len > aigc_base64_max(size)))
    abort();
  if (rc != 0 && bad > size)
    abort();
  if (rc != 0 && bad < size && value_of(data[bad]) >= 0 && memchr(data, '=', bad) == NULL)
    abort();   /* a character of the alphabet is wrong only after padding */
  free(got);
  free(want);
  /* float32: compare with the host's own reading (x86/ARM: little-endian) */
  {
    size_t count = size / 4;
    double *vals = (double *)malloc((count + 1) * sizeof *vals);
    aigc_f32le_decode(data, count, vals);
    for (i = 0; i < count; i++) {
      float f;
      memcpy(&f, data + 4 * i, 4);
      if (!(vals[i] == (double)f || (vals[i] != vals[i] && f != f)))
        abort();
    }
    free(vals);
  }
  return 0;
}
