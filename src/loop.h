/*
** loop.h — the engine behind a client and the loop that drives it: one
** libcurl multi handle, the sockets and the timer libcurl asks us to watch
** (CURLMOPT_SOCKETFUNCTION / TIMERFUNCTION), and one turn of the loop.
**
** One turn (aigc_loop_drive):
**   1. wait (epoll / poll, poller.h) until a socket is ready, a deadline
**      passes or the time given runs out, in slices of at most
**      AIGC_WAIT_SLICE so that an interrupt (Ctrl-C) is noticed;
**   2. let libcurl act on ready sockets and on its timer;
**   3. collect finished transfers;
**   4. fire the requests' own timers (retries, idle streams, the grace
**      after [DONE], deadlines);
**   5. start queued requests while slots are free (max_concurrency);
**   6. dispatch: stream events, outcomes and ends run their Lua callbacks.
** libcurl callbacks never call Lua; steps 1-5 never call Lua either, so a
** Lua error can only happen in step 6, which runs under lua_pcall.
** Blocking calls are "submit, then drive until this request is over": the
** same loop as step(), never a separate path. The same state serves an
** external event loop (luv...): `watch` reports the sockets and the timer,
** `act` feeds readiness back.
**
** THE RE-ENTRANCY RULE (aigc.h): every walk of a request list that can run
** Lua pops from a list head or re-reads its cursor (a finalizer may unlink
** anything); an error escaping step 6 finds the counters (dispatching,
** stepping, reporting, current) restored and the request being delivered
** ended before it is raised again.
*/
#ifndef AIGC_LOOP_H
#define AIGC_LOOP_H

#include "poller.h"
#include "request.h"
#include "roster.h"
#include "util.h"

/* A socket change not yet reported to an external loop's watcher. */
typedef struct aigc_sockchange {
  curl_socket_t fd;
  int what;                     /* CURL_POLL_IN / OUT / INOUT / REMOVE */
  int fresh;                    /* an add of an fd the watcher does not know */
} aigc_sockchange;

typedef struct aigc_engine {
  aigc_roster roster;           /* what its requests see: lists, config... */
  aigc_poller poller;           /* the sockets libcurl asked us to watch */
  double curl_deadline;         /* libcurl's timer (CURLMOPT_TIMERFUNCTION); < 0: none */
  /* an external loop's watcher (eng:watch) */
  int watching, reporting;
  aigc_sockchange *changes;     /* socket changes not yet reported */
  size_t nchanges, capchanges;
  size_t told;                  /* changes[0 .. told) are reported (during a report) */
  double reported_deadline;     /* the deadline last reported, -1 none, -2 to report */
  double task_deadline;         /* when the Lua layer's tasks need a turn; < 0: never */
  /* the loop */
  int dispatching;              /* depth of nested dispatch */
  int stepping;                 /* inside step() or act() */
  unsigned pass;                /* dispatch passes so far (see skip_pass) */
} aigc_engine;

/* Sets up a new engine's multi handle (the roster's multi) with the
   loop's socket and timer callbacks. 0, or -1 if libcurl refused. */
int  aigc_loop_init (aigc_engine *e);
/* Frees what the loop holds, after curl_multi_cleanup. */
void aigc_loop_free (aigc_engine *e);

/* Hands a new request to the engine: started now if a slot is free, else
   queued. */
void aigc_loop_start (aigc_engine *e, aigc_request *r);

/*
** One turn of the loop, the engine at eidx: waits at most `timeout`
** seconds, runs at most `budget` callbacks (0: no limit). Never raises:
** returns the callbacks run, or, when an error escaped the Lua part (out
** of memory, an interrupt), sets *status to its code and leaves the error
** on the stack, with the engine consistent again (counters restored, the
** request being delivered ended). The caller raises it (lua_error) after
** its own clean-up. `hooks`: the debug hooks the caller's wait started
** with (NULL: from now).
*/
int  aigc_loop_drive (lua_State *L, int eidx, double timeout, int budget,
                      aigc_hooks *hooks, int *status);
/* Dispatches the ready list (callbacks run; errors propagate): close()
   runs it under its own lua_pcall. */
int  aigc_loop_dispatch (lua_State *L, int eidx, aigc_engine *e, int budget);
/* libcurl acts on socket fd (mask: CURL_CSELECT_*), or on its timer when
   fd is CURL_SOCKET_TIMEOUT. */
void aigc_loop_socket_action (aigc_engine *e, curl_socket_t fd, int mask);
/* The earliest moment an external loop must call act(): the engine's
   timers and the tasks' (task_deadline); now when callbacks are waiting;
   -1 if nothing is timed. */
double aigc_loop_watch_deadline (aigc_engine *e);
/* Starts reporting to an external loop's watcher: every watched socket is
   reported as new, then the timer. Raises what escapes the watcher. */
void aigc_loop_watch (lua_State *L, int eidx, aigc_engine *e);
/* Reports to the watcher what changed (sockets, the timer), now: for a
   change made outside any turn of the loop (a task's deadline). Does
   nothing inside a turn (its own report follows). Raises what escapes. */
void aigc_loop_report (lua_State *L, int eidx, aigc_engine *e);
/* close(): the watcher hears "remove" for every socket it watches and
   timer_fn(nil), before libcurl closes them; then it is told nothing more.
   Never raises (what escapes the watcher, memory, is dropped). */
void aigc_loop_unwatch (lua_State *L, int eidx, aigc_engine *e);

#endif
