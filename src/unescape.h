/*
** unescape.h — a text's escapes decoded (unescape.c), and the way back
** from a decoded byte to the bytes of the text it came from. Pure C.
*/
#ifndef AIGC_UNESCAPE_H
#define AIGC_UNESCAPE_H

#include <stddef.h>

/* Whether s[0..len) holds an escape, or ends with one cut short. */
int aigc_has_escape (const char *s, size_t len);
/* Whether s[0..len) holds an escape that decodes (one cut short aside):
   whether decoding it once more changes it. */
int aigc_escapes_in (const char *s, size_t len);
/* s[0..len) unescaped into out (len bytes: never longer); returns its
   length. What is no escape is kept as it is. */
size_t aigc_unescape (const char *s, size_t len, char *out);
/* The bytes at the end of d[0..dlen) that are an escape cut short, or 0. */
size_t aigc_cut_escape (const char *d, size_t dlen);

/* A walk of a text s[0..len) and its unescaped form together: at, the
   byte of s where the decoded byte dat comes from. */
typedef struct aigc_unescaped {
  const char *s;
  size_t len, at, dat;
} aigc_unescaped;

/* The levels of a text's nested escapes: level k the text unescaped k
   times (k = 1..AIGC_LEVELS), each walked back to the one before. */
#define AIGC_LEVELS 3
typedef struct aigc_levels {
  aigc_unescaped U[AIGC_LEVELS];
  int n;
} aigc_levels;

/* Unescapes s[0..len) `levels` times (1..AIGC_LEVELS) into d (levels *
   len bytes), level k at d + (k - 1) * len; V walks them. Returns the
   length of the last level, or (size_t)-1 when a level before it (the
   text included) holds no escape. */
size_t aigc_unescape_levels (aigc_levels *V, const char *s, size_t len, char *d, int levels);
/* Where byte `to` of the last level lies in the text, through every
   level: the start of the escape it comes from (end 0), or the end of
   the one byte to - 1 comes from (end 1). Calls go forward. */
size_t aigc_levels_at (aigc_levels *V, size_t to, int end);

#endif
