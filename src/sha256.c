/*
** sha256.c — SHA-256 and HMAC-SHA-256 (sha256.h), after FIPS 180-4's
** definitions: a 64-byte block at a time, big-endian words.
*/
#include <string.h>

#include <stdint.h>

#include "sha256.h"

typedef struct sha256_ctx {
  uint32_t h[8];
  uint64_t bytes;          /* bytes hashed so far */
  unsigned char block[64];
  size_t used;             /* bytes of `block` filled */
} sha256_ctx;

static const uint32_t K[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress (uint32_t h[8], const unsigned char *p) {
  uint32_t w[64], a, b, c, d, e, f, g, k, t1, t2;
  int i;
  for (i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (i = 16; i < 64; i++) {
    uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4]; f = h[5]; g = h[6]; k = h[7];
  for (i = 0; i < 64; i++) {
    t1 = k + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    k = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

static void sha256_init (sha256_ctx *c) {
  static const uint32_t H0[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
  };
  memcpy(c->h, H0, sizeof H0);
  c->bytes = 0;
  c->used = 0;
}

static void sha256_add (sha256_ctx *c, const void *data, size_t len) {
  const unsigned char *p = (const unsigned char *)data;
  c->bytes += len;
  while (len > 0) {
    size_t n = 64 - c->used < len ? 64 - c->used : len;
    memcpy(c->block + c->used, p, n);
    c->used += n;
    p += n;
    len -= n;
    if (c->used == 64) {
      compress(c->h, c->block);
      c->used = 0;
    }
  }
}

static void sha256_end (sha256_ctx *c, unsigned char out[AIGC_SHA256_BYTES]) {
  uint64_t bits = c->bytes * 8;
  unsigned char pad = 0x80, len[8];
  int i;
  sha256_add(c, &pad, 1);
  pad = 0;
  while (c->used != 56)
    sha256_add(c, &pad, 1);
  for (i = 0; i < 8; i++)
    len[i] = (unsigned char)(bits >> (56 - 8 * i));
  sha256_add(c, len, 8);
  for (i = 0; i < 8; i++) {
    out[4 * i] = (unsigned char)(c->h[i] >> 24);
    out[4 * i + 1] = (unsigned char)(c->h[i] >> 16);
    out[4 * i + 2] = (unsigned char)(c->h[i] >> 8);
    out[4 * i + 3] = (unsigned char)c->h[i];
  }
}

void aigc_hmac_sha256 (const void *key, size_t klen, const void *msg, size_t mlen,
                       unsigned char out[AIGC_SHA256_BYTES]) {
  unsigned char k[64], pad[64], inner[AIGC_SHA256_BYTES];
  sha256_ctx c;
  int i;
  memset(k, 0, sizeof k);
  if (klen > 64) {   /* a longer key is its digest */
    sha256_init(&c);
    sha256_add(&c, key, klen);
    sha256_end(&c, k);
  }
  else if (klen > 0)
    memcpy(k, key, klen);
  for (i = 0; i < 64; i++)
    pad[i] = k[i] ^ 0x36;
  sha256_init(&c);
  sha256_add(&c, pad, 64);
  sha256_add(&c, msg, mlen);
  sha256_end(&c, inner);
  for (i = 0; i < 64; i++)
    pad[i] = k[i] ^ 0x5c;
  sha256_init(&c);
  sha256_add(&c, pad, 64);
  sha256_add(&c, inner, sizeof inner);
  sha256_end(&c, out);
  memset(k, 0, sizeof k);   /* (the key's copies: not left on the stack) */
  memset(pad, 0, sizeof pad);
}
