/*
** slots.h — the engine's tables of requests (its user values, aigc.h),
** keyed by each request's slot, a small integer (slots.c: why not its
** address). A request is three userdata: its handle (what Lua holds), its
** core (the C state) and the core's finalizer (slots.c: "The request's
** three objects").
*/
#ifndef AIGC_SLOTS_H
#define AIGC_SLOTS_H

#include "transfer.h"

/* Request user values (lua_newuserdatauv slots). */
enum {
  AIGC_RQ_ENGINE = 1,   /* the engine userdata: keeps it alive */
  AIGC_RQ_STREAM,       /* stream callback (function) or nil */
  AIGC_RQ_ON_DONE,      /* on_done callback */
  AIGC_RQ_ON_ERROR,     /* on_error callback */
  AIGC_RQ_WAITERS,      /* what runs once at its end, after on_done/on_error: a
                           list of functions fn(req) (req:_notify(fn), and a
                           closure calling the scheduler's resume(co, req)
                           for each task waiting in wait()), or nil */
  AIGC_RQ_RESULT,       /* the result table or the error object, once terminal */
  AIGC_RQ_READER,       /* the function feeding an upload part (body.h), or nil */
  AIGC_RQ_STREAM_END,   /* on_stream_end callback: a stream's last word, before its end */
  AIGC_RQ_HELD,         /* a Responses stream's held error (request.c, handle_event) */
  AIGC_RQ_OBSERVE,      /* the Lua layer's observer of its end (opts.observe): fn(res, err),
                           run once before on_done/on_error (request.c, observe_end) */
  AIGC_RQ_CORE,         /* the finalizer of the C state (slots.c, "The
                           request's three objects"): kept alive by this one */
  AIGC_RQ_NSLOTS = AIGC_RQ_CORE
};

/*
** The engine's tables of requests (its user values): every live request is
** in the weak one, so the engine finds its userdata from the C pointer; one
** that someone expects to hear from (callbacks, waiters) is in the strong
** one too (hold puts it there). Pushing the userdata returns 0
** (pushing nothing) when it is being collected. Hold puts the request at
** ridx in the weak table (and in the strong one with `strong`); it
** allocates (the first time, its slot and its core in the engine's table of
** cores: it may raise). Drop takes it out of the tables of handles (nobody
** listens) and gives its slot there back; unanchor takes its core out of
** the table of cores too and gives the core's slot back (slots.c, "The
** request's three objects", and why two pools of slots).
*/
void aigc_request_hold (lua_State *L, int eidx, aigc_request *r, int ridx, int strong);
void aigc_request_drop (lua_State *L, int eidx, aigc_request *r);
void aigc_request_unanchor (lua_State *L, int eidx, aigc_request *r);
/* Unanchor's work for slots whose request has already let go of them (the
   finalizer's __gc, after its C frees): `ro` gets them back unless NULL or
   closed. A slot of 0 is none. */
void aigc_slot_release (lua_State *L, int eidx, int slot, int core_slot, aigc_roster *ro);
int  aigc_request_push (lua_State *L, int eidx, aigc_request *r);

#endif
