/*
** timers.h — the engine's requests' own timers (a deadline, a retry, a
** stream's idle limit, the grace after [DONE]) as a binary min-heap of
** (when, request), in plain C: no Lua, nothing here raises.
**
** A turn of the loop fires what is due in O(due · log n): it takes the due
** entries off the heap (aigc_timers_take_due), ticks each, and puts each
** back at its next timer. Until 2026-12-06 the loop walked every request
** bound to the engine (its `all` list: K in flight plus every ended request
** whose finalizer had not run yet, i.e. all ended since the last major
** collection) whenever any one timer was due (bench/README, 2026-12-06,
** "the requests' timers in a heap").
**
** The rules that keep it exact and safe:
**   - at most one entry per request (its aigc_timed's pos: its place + 1
**     in the heap, or -(its place + 1) in the due list of a firing, or 0:
**     none);
**   - an entry may be early, never late: a timer pushed back (a stream's
**     idle limit, moved at every byte) leaves its entry where it was; when
**     it comes, the tick does nothing and the entry goes back at the
**     request's real next timer. A timer brought forward moves the entry;
**   - a request leaves the heap when it ends (aigc_transfer_release) and
**     when it leaves the engine (aigc_roster_unlink): the heap points only
**     at requests on the engine's `all` list, whose memory the engine holds
**     (slots.c, AIGC_EN_CORES) until they leave it, __gc or none;
**   - room for every request on the `all` list is reserved before one is
**     linked (aigc_transfer_prepare), so that putting an entry in never
**     allocates and never fails.
*/
#ifndef AIGC_TIMERS_H
#define AIGC_TIMERS_H

#include <stddef.h>

/* What a request carries of its timer (in its roster entry, roster.h). */
typedef struct aigc_timed {
  int pos;                            /* see above */
} aigc_timed;

typedef struct aigc_timer_slot {
  double at;                          /* monotonic time it is due */
  aigc_timed *tm;
} aigc_timer_slot;

typedef struct aigc_timers {
  aigc_timer_slot *heap;              /* heap[0] is the earliest */
  aigc_timed **due;                   /* the entries a firing took off (NULL: taken away since) */
  size_t n, ndue, cap;                /* (both arrays hold cap) */
} aigc_timers;

/* Room for `count` requests with a timer each: 0, or -1 (out of memory,
   nothing changed). */
int aigc_timers_reserve (aigc_timers *t, size_t count);
/* Frees the arrays; every entry still in them is told it is in none. */
void aigc_timers_free (aigc_timers *t);

/* tm's next timer is at `at` (< 0: none): its entry goes in, or comes
   forward, or goes out; an entry earlier than `at` stays (see above). An
   entry in the due list of a firing is left: the firing puts it back. */
void aigc_timers_set (aigc_timers *t, aigc_timed *tm, double at);
/* tm has no timer any more (it ended, or leaves the engine). */
void aigc_timers_remove (aigc_timers *t, aigc_timed *tm);

/* The earliest entry's time, or -1 when there is none. */
static inline double aigc_timers_first (const aigc_timers *t) {
  return t->n > 0 ? t->heap[0].at : -1.0;
}

/* Moves every entry due at `now` to the due list (t->due[0 .. t->ndue)). */
void aigc_timers_take_due (aigc_timers *t, double now);

#endif
