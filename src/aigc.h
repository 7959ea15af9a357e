/*
** aigc.h — the definitions every Lua-facing C file of aigc.core shares:
** the version, the metatables' names, the defaults, the user values of
** the engine userdata. Declarations only; no function is declared here.
**
** The C core is layered (docs/ARCHITECTURE.md, "The layers of the C
** core"; scripts/check-layers.lua fails on a cycle), bottom first:
**   plain C, no Lua:
**     buf       a growable byte buffer
**     sse       the Server-Sent Events parser
**     json, jsonout   JSON text <-> a C tree (parse; write, copy, numbers)
**     accum_shape, accum   the chunks of a stream merged into one reply
**     accum_keys           its key lookups (hash tables for big objects)
**     poller    the sockets an engine waits on (epoll / poll)
**     roster    an engine's lists of requests, its slots, its easy handles,
**               the client's configuration
**   with Lua:
**     util      clock, pcall trampoline, interrupts, option readers, the
**               caller's position and the one misuse format, call options
**     home      the state's sentinel: its live clients, vector indexes and
**               locks, freed when lua_close gave them no __gc
**     jsonlua   Lua values <-> JSON trees
**     headers   request headers built and checked; the response header
**               store; Retry-After
**     error     error objects, redaction of secrets, reporting callback
**               errors, log lines
**     transfer  one request's transfer: libcurl callbacks (no Lua),
**               attempts, timers, retries
**     response  a finished transfer or a stream event made into Lua: the
**               result, the error object, the stream callback's arguments
**     slots     the engine's tables of requests: a request's slot, its
**               handle held, its core anchored (its three objects)
**     request   one request's life: made, dispatched, ended, canceled; its
**               waiters; its methods
**     engine    the engine: the multi handle, its sockets and timer, the
**               drive loop, the dispatch, close; the client's methods
**     core      luaopen_aigc_core, the module table
** Each file calls and includes only files below it.
**
** THE RE-ENTRANCY RULE (docs/ARCHITECTURE.md). Any Lua allocation
** (lua_push*, lua_createtable, lua_newuserdatauv, luaL_Buffer growth,
** lua_setfield on a new key...) may run a __gc finalizer, and a finalizer
** may call any aigc function: cancel, close, chat (a nested drive), step.
** So C code
**   - never holds a raw pointer into request- or engine-owned memory across
**     a Lua allocation unless that memory is pinned: a request being
**     delivered has `delivering` set, and its transfer memory is then only
**     freed once the delivery ends (the events being delivered sit in
**     `draining`, which libcurl never touches);
**   - re-checks state after its allocations (r->state, r->roster,
**     roster->closed) before acting on what it computed;
**   - restores its counters (stepping, dispatching, reporting, delivering,
**     in_callback) when an error escapes: the Lua part of a drive runs under
**     lua_pcall, and the error is raised again only once the engine is
**     consistent.
**
** THE LIFECYCLE CONTRACT. Every request ends exactly once (done, failed or
** canceled). A request given on_done/on_error gets exactly one of them, and
** each of its waiters (req:_notify functions, tasks waiting in wait()) is
** told exactly once; a canceled or closed request gets on_error(err) with
** err.kind == "canceled", run by the driving loop (step, act, wait, a
** blocking call, or close() itself), never from inside cancel() or a
** finalizer. Nothing else (a stream delta, on_done) runs after cancel.
** Every error a callback raises is reported exactly once: to the client's
** error_handler, else kept for the next step()'s second result, else (the
** client closed or collected with errors nobody collected) written to
** stderr.
**
** Only luaopen_aigc_core is exported (built with -fvisibility=hidden);
** every cross-file symbol carries the prefix aigc_.
*/
#ifndef AIGC_H
#define AIGC_H

#include "compat.h"

#define AIGC_VERSION "0.1.0"

#define AIGC_ENGINE_MT  "aigc.engine"
#define AIGC_REQUEST_MT "aigc.request"
#define AIGC_REQUEST_CORE_MT "aigc.request.core"   /* its C state (request.c) */
#define AIGC_ERROR_MT   "aigc.error"
#define AIGC_ARRAY_MT   "aigc.array"    /* marks a table as a JSON array */

#if defined(__GNUC__)
#define AIGC_EXPORT __attribute__((visibility("default")))
#define AIGC_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define AIGC_EXPORT
#define AIGC_PRINTF(fmt, args)
#endif

/* Defaults from REFERENCE.md (the official SDKs' values). */
#define AIGC_DEFAULT_TIMEOUT          600.0
#define AIGC_DEFAULT_CONNECT_TIMEOUT  5.0
#define AIGC_DEFAULT_MAX_RETRIES      2
#define AIGC_DEFAULT_MAX_BYTES        ((size_t)64 << 20)
#define AIGC_MAX_RETRY_AFTER          120.0  /* seconds; longer: do not retry */
#define AIGC_DONE_GRACE               2.0    /* seconds a server may take to end
                                                the response after [DONE] */
#define AIGC_MAX_KEPT_ERRORS          1000   /* callback errors kept for step();
                                                more go to stderr */
#define AIGC_WAIT_SLICE               0.1    /* seconds: the longest a wait sleeps
                                                before it looks for an interrupt */

/* The engine userdata's user values (its Lua half). */
enum {
  AIGC_EN_STRONG = 1,   /* slot -> req: requests kept alive (request.c hold) */
  AIGC_EN_WEAK,         /* slot -> req, weak values: all live */
  AIGC_EN_LOG,          /* log function or nil */
  AIGC_EN_ERRHANDLER,   /* handler for errors in on_done/on_error/waiters */
  AIGC_EN_WATCH_SOCKET, /* external loop: function(fd, what) */
  AIGC_EN_WATCH_TIMER,  /* external loop: function(seconds or nil) */
  AIGC_EN_ERRORS,       /* errors reported and not yet returned by step(): a
                           list, always a table (never nil) */
  AIGC_EN_TASKS,        /* the scheduler (engine:set_scheduler): its tasks table */
  AIGC_EN_TOKEN,        /* the value a task yields to it */
  AIGC_EN_RESUME,       /* resume(co, req) */
  AIGC_EN_ENDED,        /* watched requests whose end was delivered (a list, or
                           nil): eng:take_ended hands it over */
  AIGC_EN_CORES,        /* slot -> the userdata holding a request's C state, for
                           as long as the request has its slot (slots.c,
                           "The request's three objects") */
  AIGC_EN_NSLOTS = AIGC_EN_CORES
};

#endif
