/*
** utf8.h — UTF-8 well-formedness, shared by the JSON parser (json.c) and
** writer (jsonout.c), and where to cut a quoted string (error.c,
** server_error.c). Static inline functions: the first is in the JSON
** code's hottest loops.
*/
#ifndef AIGC_UTF8_H
#define AIGC_UTF8_H

#include <stddef.h>

/*
** Length of the well-formed UTF-8 sequence starting at s[0] (a byte
** >= 0x80) within the n available bytes, or 0 if it is ill-formed:
** a stray continuation byte, an overlong form (C0, C1, E0 80..9F,
** F0 80..8F), a UTF-16 surrogate (ED A0..BF), a code point above U+10FFFF
** (F4 90.., F5..FF) or a sequence cut short. Never reads s[n] or beyond.
*/
static inline size_t aigc_utf8_seq (const unsigned char *s, size_t n) {
  unsigned c = s[0];
  unsigned lo = 0x80, hi = 0xBF;
  if (c < 0xC2)
    return 0;
  if (c < 0xE0)
    return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
  if (c < 0xF0) {
    if (c == 0xE0) lo = 0xA0;
    else if (c == 0xED) hi = 0x9F;
    if (n < 3 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80)
      return 0;
    return 3;
  }
  if (c < 0xF5) {
    if (c == 0xF0) lo = 0x90;
    else if (c == 0xF4) hi = 0x8F;
    if (n < 4 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 ||
        (s[3] & 0xC0) != 0x80)
      return 0;
    return 4;
  }
  return 0;
}

/*
** Length of the first `max` bytes of s[0..len), cut back to the start of
** a UTF-8 character (a continuation byte is never the first one kept out):
** a cut in the middle of a character would put invalid UTF-8 in an error's
** message (which JSON encoders and LOVE's print refuse).
*/
static inline size_t aigc_utf8_cut (const char *s, size_t len, size_t max) {
  if (len <= max)
    return len;
  while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
    max--;
  return max;
}

#endif
