/*
** base64_test.c — unit tests for src/base64.c (base64, float32) and
** src/vec.c (cosine, top-k). The decoder is checked against a naive
** encoder written here (round trips over every length and byte value), the
** RFC 4648 vectors, and the inputs it must refuse (with the offset).
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "base64.h"
#include "vec.h"

static const char ALPHA[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* A naive encoder (padding optional), independent of the decoder's table. */
static size_t encode (const unsigned char *in, size_t n, char *out, int pad) {
  size_t i, o = 0;
  for (i = 0; i + 2 < n; i += 3) {
    unsigned long v = ((unsigned long)in[i] << 16) | ((unsigned long)in[i + 1] << 8) | in[i + 2];
    out[o++] = ALPHA[(v >> 18) & 63];
    out[o++] = ALPHA[(v >> 12) & 63];
    out[o++] = ALPHA[(v >> 6) & 63];
    out[o++] = ALPHA[v & 63];
  }
  if (n - i == 1) {
    out[o++] = ALPHA[in[i] >> 2];
    out[o++] = ALPHA[(in[i] & 3) << 4];
    if (pad) { out[o++] = '='; out[o++] = '='; }
  }
  else if (n - i == 2) {
    out[o++] = ALPHA[in[i] >> 2];
    out[o++] = ALPHA[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
    out[o++] = ALPHA[(in[i + 1] & 15) << 2];
    if (pad) out[o++] = '=';
  }
  out[o] = '\0';
  return o;
}

static int decode_str (const char *s, unsigned char *out, size_t *len, size_t *bad) {
  return aigc_base64_decode(s, strlen(s), out, len, bad);
}

TEST(rfc4648_vectors) {
  static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
  static const char *const coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
  unsigned char out[16];
  size_t i, len, bad;
  for (i = 0; i < 7; i++) {
    CHECK_EQ_INT(decode_str(coded[i], out, &len, &bad), 0);
    CHECK_EQ_MEM(out, len, plain[i], strlen(plain[i]));
  }
}

TEST(round_trips_every_length_and_byte) {
  unsigned char in[300], out[300 + 3];
  char text[420];
  size_t n, len, bad;
  int pad;
  srand(7);
  for (n = 0; n < 300; n++) {
    size_t i;
    for (i = 0; i < n; i++)
      in[i] = (unsigned char)(n < 256 ? (i + n) & 255 : rand() & 255);
    for (pad = 0; pad < 2; pad++) {
      size_t tl = encode(in, n, text, pad);
      CHECK(aigc_base64_max(tl) >= n);
      CHECK_EQ_INT(aigc_base64_decode(text, tl, out, &len, &bad), 0);
      CHECK_EQ_MEM(out, len, in, n);
    }
  }
}

TEST(whitespace_and_url_alphabet) {
  unsigned char out[16];
  size_t len, bad;
  CHECK_EQ_INT(decode_str(" Zm9v\r\nYmFy\n", out, &len, &bad), 0);
  CHECK_EQ_MEM(out, len, "foobar", 6);
  CHECK_EQ_INT(decode_str("-_-_", out, &len, &bad), 0);
  CHECK_EQ_MEM(out, len, "\xfb\xff\xbf", 3);
  CHECK_EQ_INT(decode_str("Zg==\n", out, &len, &bad), 0);   /* whitespace after padding */
  CHECK_EQ_MEM(out, len, "f", 1);
}

TEST(refusals_say_where) {
  unsigned char out[32];
  size_t len, bad;
  CHECK_EQ_INT(decode_str("Zm9*", out, &len, &bad), -1);
  CHECK_EQ_INT(bad, 3);
  CHECK_EQ_INT(decode_str("Zg==Zg==", out, &len, &bad), -1);   /* data after padding */
  CHECK_EQ_INT(bad, 4);
  CHECK_EQ_INT(decode_str("Z===", out, &len, &bad), -1);        /* padding too early */
  CHECK_EQ_INT(bad, 1);
  CHECK_EQ_INT(decode_str("Zm9vY", out, &len, &bad), -1);       /* a lone sextet */
  CHECK_EQ_INT(bad, 5);
  CHECK_EQ_INT(decode_str("Zm9v\x80", out, &len, &bad), -1);   /* a high byte */
  CHECK_EQ_INT(bad, 4);
  CHECK_EQ_INT(aigc_base64_decode("Zm\0v", 4, out, &len, &bad), -1);   /* NUL */
  CHECK_EQ_INT(bad, 2);
}

TEST(float32_little_endian_exact) {
  const unsigned char bytes[] = { 0x00, 0x00, 0x80, 0x3f,   /* 1 */
                                  0x00, 0x00, 0x00, 0xbf,   /* -0.5 */
                                  0xcd, 0xcc, 0xcc, 0x3d,   /* 0.1f */
                                  0x00, 0x00, 0x80, 0x7f,   /* inf */
                                  0x01, 0x00, 0x00, 0x00 }; /* the smallest subnormal */
  double out[5];
  aigc_f32le_decode(bytes, 5, out);
  CHECK(out[0] == 1.0);
  CHECK(out[1] == -0.5);
  CHECK(out[2] == (double)0.1f);
  CHECK(isinf(out[3]) && out[3] > 0);
  CHECK(out[4] == ldexp(1.0, -149));
}

TEST(cosine_and_topk) {
  float a[] = { 1, 2, 3 }, b[] = { 2, 4, 6 }, z[] = { 0, 0, 0 };
  float set[4 * 3] = { 1, 0, 0,  0, 1, 0,  0.9f, 0.1f, 0,  -1, 0, 0 };
  float q[3] = { 1, 0.05f, 0 };
  size_t idx[4], i, found;
  double score[4];
  CHECK(fabs(aigc_vec_cosine(a, b, 3) - 1) < 1e-6);
  CHECK(aigc_vec_cosine(a, z, 3) == 0);
  for (i = 0; i < 4; i++)
    aigc_vec_normalize(set + 3 * i, 3);
  aigc_vec_normalize(q, 3);
  found = aigc_vec_topk(set, 4, 3, q, 2, idx, score);
  CHECK_EQ_INT(found, 2);
  CHECK_EQ_INT(idx[0], 0);
  CHECK_EQ_INT(idx[1], 2);
  found = aigc_vec_topk(set, 4, 3, q, 9, idx, score);
  CHECK_EQ_INT(found, 4);
  CHECK_EQ_INT(idx[3], 3);
  CHECK(score[0] >= score[1] && score[1] >= score[2] && score[2] >= score[3]);
  CHECK_EQ_INT(aigc_vec_topk(set, 4, 3, q, 0, idx, score), 0);
}

/* Norms in double: float32 values whose squares overflow (or underflow) a
   float sum still normalize, and their cosine is still 1 (it was NaN, and
   the normalized vector all zeros). */
TEST(cosine_and_norm_of_extreme_floats) {
  float big[] = { 3e38f, 3e38f }, tiny[] = { 1e-30f, 0, 1e-30f }, tiny2[] = { 2e-30f, 0, 2e-30f };
  float both[] = { 1e20f, 1e20f };
  CHECK(fabs(aigc_vec_cosine(big, big, 2) - 1) < 1e-6);
  CHECK(fabs(aigc_vec_cosine(tiny, tiny2, 3) - 1) < 1e-6);
  aigc_vec_normalize(big, 2);
  aigc_vec_normalize(tiny, 3);
  aigc_vec_normalize(both, 2);
  CHECK(fabs(big[0] - 0.70710678) < 1e-6 && fabs(big[1] - 0.70710678) < 1e-6);
  CHECK(fabs(tiny[0] - 0.70710678) < 1e-6 && tiny[1] == 0);
  CHECK(fabs(both[0] - 0.70710678) < 1e-6);
}

int main (void) {
  RUN(rfc4648_vectors);
  RUN(round_trips_every_length_and_byte);
  RUN(whitespace_and_url_alphabet);
  RUN(refusals_say_where);
  RUN(float32_little_endian_exact);
  RUN(cosine_and_topk);
  RUN(cosine_and_norm_of_extreme_floats);
  return ctest_report("base64");
}
