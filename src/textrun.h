/*
** textrun.h — the plain chat stream's chunks delivered in runs: the
** chunks of a dispatch that the scanner merges (accum_scan.c) each call
** the stream callback with their text, all under one lua_pcall, where a
** pcall per chunk cost ~0.1k instructions (its setjmp, the protected
** call's frame). request.c's deliver_text_chunks runs it and does what
** the run leaves (a chunk the scanner declines, the callback's error).
*/
#ifndef AIGC_TEXTRUN_H
#define AIGC_TEXTRUN_H

#include "transfer.h"

/* One run's state, in and out (request.c owns it, on its C stack). */
typedef struct aigc_text_run {
  aigc_request *r;
  int budget;            /* in: callbacks allowed in the dispatch (0: any) */
  int count;             /* in/out: callbacks run in the dispatch so far */
  int in_callback;       /* out: an error came from the stream callback */
  int held;              /* out: the scanner declined the event below */
  const char *type, *data;
  size_t tlen, dlen;
} aigc_text_run;

/* Whether r's stream events may be delivered now (request.c's dispatch
   asks the same): running, its client open, its deadline not passed. */
static inline int aigc_text_deliverable (const aigc_request *r) {
  return r->state == AIGC_RUNNING && r->roster != NULL && !r->roster->closed
         && r->abort_reason != AIGC_ABORT_DEADLINE;
}

/*
** A lua_CFunction for lua_pcall: the stream callback (or nil) at 1, the
** run (a light userdata) at 2. Takes r's queued events while r stays
** deliverable and the budget allows: an unnamed one the scanner merges
** calls the callback with choice 0's text (or nil); the first other one
** stops the run, held in the run (type/data, `held`) for the caller. An
** error the callback raises unwinds the run with `in_callback` set; any
** other (out of memory making a delta) leaves it clear. A finalizer run by
** an allocation may end r: re-checked before each call.
*/
int aigc_text_run_chunks (lua_State *L);

#endif
