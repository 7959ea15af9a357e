/*
** buf.h — a growable byte buffer in plain C (no Lua).
**
** Used by the SSE parser, the JSON writer and the request's body and event
** queues. A buffer is either empty ({NULL, 0, 0}) or owns `cap` bytes of
** malloc'ed memory; `data` is always NUL-terminated when non-NULL so it can
** be handed to C string functions. Allocation failures are reported, never
** fatal: every function that can grow returns 0 on success, -1 on ENOMEM,
** and leaves the buffer as it was.
*/
#ifndef AIGC_BUF_H
#define AIGC_BUF_H

#include <stddef.h>

typedef struct aigc_buf {
  char *data;
  size_t len;   /* bytes in use, not counting the terminating NUL */
  size_t cap;   /* bytes allocated */
} aigc_buf;

#define AIGC_BUF_INIT {NULL, 0, 0}

int  aigc_buf_reserve (aigc_buf *b, size_t extra);
int  aigc_buf_append (aigc_buf *b, const void *p, size_t n);
int  aigc_buf_putc (aigc_buf *b, char c);
void aigc_buf_clear (aigc_buf *b);   /* len = 0, keeps the memory */
void aigc_buf_free (aigc_buf *b);    /* releases the memory */

#endif
