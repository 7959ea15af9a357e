/*
** buf.c — see buf.h.
*/
#include <stdlib.h>
#include <string.h>

#include "buf.h"

int aigc_buf_reserve (aigc_buf *b, size_t extra) {
  size_t need, ncap;
  char *p;
  if (extra > (size_t)-1 - b->len - 1)
    return -1;                          /* would overflow size_t */
  need = b->len + extra + 1;            /* + NUL */
  if (need <= b->cap)
    return 0;
  ncap = b->cap ? b->cap : 64;
  while (ncap < need)                   /* doubling keeps appends O(1) amortized */
    ncap = (ncap > (size_t)-1 / 2) ? need : ncap * 2;
  p = (char *)realloc(b->data, ncap);
  if (p == NULL)
    return -1;
  b->data = p;
  b->cap = ncap;
  return 0;
}

int aigc_buf_append (aigc_buf *b, const void *p, size_t n) {
  if (aigc_buf_reserve(b, n) != 0)
    return -1;
  if (n > 0)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int aigc_buf_putc (aigc_buf *b, char c) {
  if (b->len + 1 >= b->cap && aigc_buf_reserve(b, 1) != 0)
    return -1;
  b->data[b->len++] = c;
  b->data[b->len] = '\0';
  return 0;
}

void aigc_buf_clear (aigc_buf *b) {
  b->len = 0;
  if (b->data != NULL)
    b->data[0] = '\0';
}

void aigc_buf_free (aigc_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
