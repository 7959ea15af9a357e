/*
** base64.c — base64 and little-endian float32 decoding (base64.h).
**
** The decoder looks every character up in one 256-entry table (values
** 0-63, SKIP for whitespace, PAD for '=', BAD otherwise) and takes the
** fast path of four plain characters at a time; whitespace and padding go
** through the slow path one character at a time.
*/
#include <string.h>

#include "base64.h"

#define BAD 0xFF
#define SKIP 0xFE
#define PAD 0xFD

/* The value of each byte: 0-63, or SKIP (ASCII whitespace), PAD ('='), BAD.
   Constant, so threads with Lua states of their own share it safely. */
static const unsigned char table[256] = {
  BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, SKIP, SKIP, SKIP, SKIP, SKIP, BAD, BAD,
  BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
  SKIP, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, 62, BAD, 62, BAD, 63,
  52, 53, 54, 55, 56, 57, 58, 59, 60, 61, BAD, BAD, BAD, PAD, BAD, BAD,
  BAD, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
  15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, BAD, BAD, BAD, BAD, 63,
  BAD, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
  41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, BAD, BAD, BAD, BAD, BAD,
  BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
  BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
  BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
  BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
  BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
  BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
  BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
  BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
};

int aigc_base64_decode (const char *in, size_t n, unsigned char *out, size_t *outlen,
                        size_t *bad) {
  const unsigned char *s = (const unsigned char *)in;
  size_t i = 0, o = 0, pads = 0;
  unsigned acc = 0, have = 0;   /* sextets gathered for the current quantum */
  while (i < n) {
    unsigned char c;
    if (have == 0 && pads == 0 && i + 4 <= n) {   /* the fast path */
      unsigned a = table[s[i]], b = table[s[i + 1]], c2 = table[s[i + 2]], d = table[s[i + 3]];
      if ((a | b | c2 | d) < 64) {
        unsigned v = (a << 18) | (b << 12) | (c2 << 6) | d;
        out[o] = (unsigned char)(v >> 16);
        out[o + 1] = (unsigned char)(v >> 8);
        out[o + 2] = (unsigned char)v;
        o += 3;
        i += 4;
        continue;
      }
    }
    c = table[s[i]];
    if (c == SKIP) {
      i++;
      continue;
    }
    if (c == BAD || (c != PAD && pads > 0)) {   /* data after padding is bad too */
      *bad = i;
      return -1;
    }
    if (c == PAD) {
      if (have < 2 || have + pads >= 4) {
        *bad = i;
        return -1;
      }
      pads++;
      i++;
      continue;
    }
    acc = (acc << 6) | c;
    if (++have == 4) {
      out[o] = (unsigned char)(acc >> 16);
      out[o + 1] = (unsigned char)(acc >> 8);
      out[o + 2] = (unsigned char)acc;
      o += 3;
      have = 0;
      acc = 0;
    }
    i++;
  }
  if (have == 1) {   /* 6 bits cannot make a byte */
    *bad = n;
    return -1;
  }
  if (have == 2)
    out[o++] = (unsigned char)(acc >> 4);
  else if (have == 3) {
    out[o] = (unsigned char)(acc >> 10);
    out[o + 1] = (unsigned char)(acc >> 2);
    o += 2;
  }
  *outlen = o;
  return 0;
}

void aigc_f32le_decode (const unsigned char *in, size_t count, double *out) {
  size_t i;
  for (i = 0; i < count; i++, in += 4) {
    /* Assembled from bytes: right on any host byte order, and no
       unaligned load (a compiler makes this one load on x86/ARM). */
    unsigned long bits = (unsigned long)in[0] | ((unsigned long)in[1] << 8)
                         | ((unsigned long)in[2] << 16) | ((unsigned long)in[3] << 24);
    unsigned int u = (unsigned int)bits;
    float f;
    memcpy(&f, &u, sizeof f);
    out[i] = (double)f;
  }
}
