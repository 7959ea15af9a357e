/*
** syserr.h — the text of an errno value, thread-safe (plain C, no Lua).
*/
#ifndef AIGC_SYSERR_H
#define AIGC_SYSERR_H

#include <stddef.h>

/* A buffer of this size holds every text the C library gives. */
#define AIGC_ERRBUF 128

/* strerror(e) without strerror's shared buffer: the text written in buf
   (n bytes), or a constant string of the C library; never NULL. */
const char *aigc_strerror (int e, char *buf, size_t n);

#endif
