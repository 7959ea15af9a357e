/*
** request.h — one request's life on the Lua side: an "aigc.request"
** userdata made from a call's arguments, dispatched by the loop (its stream
** events, then its outcome), ended exactly once (on_done / on_error, then
** its waiters), canceled from anywhere; its methods (but wait and pump,
** which drive the engine: engine.c adds them).
**
** THE RE-ENTRANCY RULE (aigc.h): any Lua allocation may run a finalizer
** that cancels this request, closes its client or drives the loop. So
** aigc_request_dispatch pins the request (`delivering`: frees deferred, the
** events read from `draining`, the loop skips it), and after every Lua
** allocation the code re-checks r->state / r->roster before it acts; a
** value made for a request that ended meanwhile is dropped. cancel()
** allocates nothing.
*/
#ifndef AIGC_REQUEST_H
#define AIGC_REQUEST_H

#include "response.h"
#include "slots.h"
#include "transfer.h"
#include "util.h"

/* Makes the metatable and its methods (engine.c then adds wait and pump). */
void aigc_request_open (lua_State *L);
aigc_request *aigc_check_request (lua_State *L, int idx);

/* What engine:submit(kind, params [, opts]) asks for, read before anything
   is allocated. */
typedef struct aigc_submit {
  aigc_kind kind;
  int has_params;
  int stream;                   /* params.stream is true or a callable, or opts.events */
  int quiet_stream;             /* opts.stream_field == false: a stream of events whose
                                   body says so its own way (speech's stream_format) */
  int no_stream_usage;          /* opts.stream_usage == false: no default stream_options
                                   (a server that refuses the field: older Azure versions) */
  const char *path;             /* anchored by opts (argument 4) */
  const char *query;            /* the call's own, or NULL: the client's */
  aigc_argctx cx;               /* who to blame for misuse (opts.fname, opts.arg) */
  unsigned params_keys;         /* which option keys params and opts hold (request.c's */
  unsigned opts_keys;           /* AIGC_PK_ / AIGC_OK_ bits; every bit: read each one) */
} aigc_submit;
/* The names of the request kinds (aigc_kind's order), NULL-ended. */
extern const char *const aigc_request_kind_names[];
/* Checks engine:submit's arguments (engine at 1, kind at 2, params at 3,
   opts at 4). Raises on misuse. (submit.c) */
void aigc_request_read_args (lua_State *L, aigc_submit *s);
/* The bit of aigc_submit.params_keys that names the params key
   k[0..len), or 0 (core.fields_fit). (submit.c) */
unsigned aigc_params_key_bit (const char *k, size_t len);
/* aigc_submit.opts_keys of the opts table at t (core.opts_keys): every
   bit for a table with a metatable. Allocates nothing. (submit.c) */
unsigned aigc_opts_keys (lua_State *L, int t);
/*
** Makes the request userdata (pushed) for the engine at 1: its per-call
** options, callbacks, body; held by the engine (its tables, below).
** (submit.c) Runs
** Lua (metamethods, allocations): the engine may close meanwhile, which
** the caller checks after. Not yet linked: the caller finishes with
** aigc_transfer_prepare and aigc_transfer_link.
*/
aigc_request *aigc_request_new (lua_State *L, aigc_roster *ro, const aigc_submit *s);

/* Dispatches what is pending for r (its userdata at ridx, the engine at
   eidx): stream events, then the outcome, then its end. Returns the
   callbacks run (at most `budget`, 0: no limit). */
int  aigc_request_dispatch (lua_State *L, int eidx, int ridx, int budget);
/* Runs r's pending end: on_done/on_error, then the waiters. Returns
   callbacks run. */
int  aigc_request_deliver_end (lua_State *L, int eidx, int ridx);
/* Ends every pending delivery of r's memory (after an escaped error). */
void aigc_request_unpin (aigc_request *r);
/* Frees a request's C resources, as its __gc does (idempotent): from the
   engine's __gc too, for a request whose own __gc will never run (made by a
   finalizer while lua_close runs them: Lua registers no finalizer then). */
void aigc_request_free_c (aigc_request *r);
/*
** Cancels the request at ridx if it is not over. Allocates nothing: the
** error object is made later (from `why`, a static string, or the string
** at why_idx when why_idx != 0). Its on_error and waiters run from the loop.
*/
void aigc_request_cancel (lua_State *L, int ridx, const char *why, int why_idx);
/*
** Ends r now with a failure decided without a Lua allocation (kind and
** msg: static strings): when an error escaped a delivery, or a wait finds
** the request can never start. The engine's userdata is at eidx.
*/
void aigc_request_end_static (lua_State *L, int eidx, aigc_request *r, aigc_state state,
                              const char *kind, const char *msg);
/* Pushes the request's outcome: res | nil, err | nil, nil (pending). */
int  aigc_request_push_result (lua_State *L, int ridx, aigc_request *r);
/* The name of a state ("queued", "running", "done", "failed", "canceled"). */
const char *aigc_request_state_name (aigc_state st);

/*
** req:wait() inside a task of the engine's scheduler (engine:set_scheduler),
** the request at 1 and its engine at 2: whether the running thread is such
** a task and may yield here (not in a finalizer nor a debug hook:
** aigc_may_yield), and the wait itself, which registers the task as a
** waiter and yields the scheduler's token and the request (returns
** lua_yield's value, or the results at once if the request can no longer
** end).
*/
int  aigc_request_in_task (lua_State *L, int eidx);
int  aigc_request_wait_in_task (lua_State *L, aigc_request *r);

#endif
