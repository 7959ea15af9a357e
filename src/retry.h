/*
** retry.h — whether and when a request's attempt is sent again, in C (no
** Lua): the retry policy (REFERENCE.md: which statuses, the server's delay
** or the SDKs' backoff) and the four ways an attempt starts again (a
** retry; a stale keep-alive connection, once, on a new one; a body whose
** default stream_options the server refused, once, without it; headers
** whose "Expect: 100-continue" the server refused, once, without it). Each sets
** retry_at: aigc_transfer_tick (transfer.c) begins the attempt when it is
** due. Used by request.c (an attempt's end) and response.c (its outcome).
*/
#ifndef AIGC_RETRY_H
#define AIGC_RETRY_H

#include "transfer.h"

/* The delay before the next attempt, or -1: do not retry. */
double aigc_retry_delay (aigc_request *r);
/* Whether a response with this status may be retried (REFERENCE.md). */
int aigc_retry_status_retryable (const aigc_request *r, long status);
/* Schedules the next attempt in `delay` seconds (a retry). */
void aigc_retry_schedule (aigc_request *r, double delay);
/* Whether the failed attempt was a stale keep-alive connection answering
   with bytes from before (see retry.c): then start again once. */
int aigc_retry_stale (const aigc_request *r);
void aigc_retry_restart_fresh (aigc_request *r);
/* Whether the server refused the default stream_options the body ends
   with (see retry.c): then send again without it, at once. */
int aigc_retry_refused_stream_options (const aigc_request *r);
void aigc_retry_resend_without_stream_options (aigc_request *r);
/* Whether the server answered 417 to headers asking "Expect:
   100-continue" (see retry.c): then send again without it, at once. */
int aigc_retry_refused_expect (const aigc_request *r);
/* Returns 0, or -1 when no memory was left for the new header list (the
   417 then stands). */
int aigc_retry_resend_without_expect (aigc_request *r);
/* Whether that 417 came once a reader's bytes were gone (the server was
   slower than libcurl's 1 s wait): it cannot be sent again. */
int aigc_retry_refused_expect_late (const aigc_request *r);

#endif
