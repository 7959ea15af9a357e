/*
** syserr.c — the text of an errno value, thread-safe (syserr.h).
**
** strerror(3) may answer from one static buffer: POSIX does not make it
** thread-safe (glibc's text of an unknown number, other C libraries'
** every text), and two lua_States on two threads could read each other's
** message. strerror_r writes into the caller's buffer. glibc with
** _GNU_SOURCE declares the GNU variant (returns the text, maybe a
** constant not in buf); every other build the XSI one (returns 0, or an
** error number, or -1 with errno on an old glibc).
*/
#include <stdio.h>
#include <string.h>

#include "syserr.h"

const char *aigc_strerror (int e, char *buf, size_t n) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  const char *s = strerror_r(e, buf, n);
  return s != NULL ? s : "unknown error";
#else
  if (n == 0)
    return "unknown error";
  buf[0] = '\0';
  if (strerror_r(e, buf, n) != 0 || buf[0] == '\0')
    snprintf(buf, n, "error %d", e);
  return buf;
#endif
}
