/*
** aigc.h — private header shared by the C files of aigc.core.
**
** The module is split by object, as Lua's own libraries are:
**   core.c     luaopen_aigc_core, the module table, aigc.null / aigc.array
**   jsonlua.c  the bridge between Lua values and JSON (json.h trees)
**   error.c    error objects (the "aigc.error" metatable)
**   engine.c   the engine: one libcurl multi handle, its sockets and timers,
**              the driving loop (step / wait) and the dispatch of callbacks
**   request.c  one request: its easy handle, libcurl callbacks (which never
**              call Lua), its event queue, and turning a finished transfer
**              into a result or an error
** plus the plain-C parts with no Lua in them: buf, sse, json, accum.
**
** Two rules govern engine.c, request.c and core.c (docs/ARCHITECTURE.md
** has them in full, with the reasons):
**
** THE RE-ENTRANCY RULE. Any Lua allocation (lua_push*, lua_createtable,
** lua_newuserdatauv, luaL_Buffer growth, lua_setfield on a new key...) may
** run a __gc finalizer, and a finalizer may call any aigc function: cancel,
** close, chat (a nested drive), step. So C code
**   - never holds a raw pointer into request- or engine-owned memory across
**     a Lua allocation unless that memory is pinned: a request being
**     delivered has `delivering` set, and free_transfer_memory() then only
**     notes `free_deferred` (the events being delivered sit in `draining`,
**     which libcurl never touches);
**   - re-checks state after its allocations (r->state, r->engine,
**     e->closed) before acting on what it computed;
**   - restores its counters (stepping, dispatching, reporting, delivering,
**     in_callback) when an error escapes: the Lua part of a drive runs under
**     lua_pcall, and the error is raised again only once the engine is
**     consistent.
**
** THE LIFECYCLE CONTRACT. Every request ends exactly once (done, failed or
** canceled). A request given on_done/on_error gets exactly one of them, and
** each of its waiters (req:_notify functions, tasks waiting in wait()) is
** told exactly once; a canceled or
** closed request gets on_error(err) with err.kind == "canceled", run by the
** driving loop (step, act, wait, a blocking call, or close() itself), never
** from inside cancel() or a finalizer. Nothing else (a stream delta,
** on_done) runs after cancel. Every error a callback raises is reported
** exactly once: to the client's error_handler, else kept for the next
** step()'s second result, else (the client closed or collected with errors
** nobody collected) written to stderr.
**
** Only luaopen_aigc_core is exported (built with -fvisibility=hidden);
** cross-file functions carry the prefix aigc_.
*/
#ifndef AIGC_H
#define AIGC_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "compat.h"

#include "buf.h"
#include "sse.h"
#include "json.h"
#include "accum.h"

#define AIGC_VERSION "0.1.0"

#define AIGC_ENGINE_MT  "aigc.engine"
#define AIGC_REQUEST_MT "aigc.request"
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
#define AIGC_EASY_POOL                32     /* idle easy handles an engine keeps */
#define AIGC_MAX_KEPT_ERRORS          1000   /* callback errors kept for step();
                                                more go to stderr */
#define AIGC_WAIT_SLICE               0.1    /* seconds: the longest a wait sleeps
                                                before it looks for an interrupt */

typedef struct aigc_engine aigc_engine;
typedef struct aigc_request aigc_request;

/* What a request is for: decides the body's extras, parsing and streaming. */
typedef enum aigc_kind {
  AIGC_KIND_CHAT,        /* POST /chat/completions: choices[].message */
  AIGC_KIND_COMPLETION,  /* POST /completions: choices[].text */
  AIGC_KIND_JSON,        /* any other JSON POST (embeddings, ...) */
  AIGC_KIND_GET          /* GET, no body (models) */
} aigc_kind;

typedef enum aigc_state {
  AIGC_QUEUED,     /* submitted, waiting for a concurrency slot */
  AIGC_RUNNING,    /* in libcurl, or waiting for a retry timer */
  AIGC_DONE,
  AIGC_FAILED,
  AIGC_CANCELED
} aigc_state;

#define aigc_terminal(st) ((st) >= AIGC_DONE)

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
  AIGC_RQ_NSLOTS = AIGC_RQ_RESULT
};

/* Engine user values. */
enum {
  AIGC_EN_STRONG = 1,   /* lightuserdata(req) -> req: requests kept alive */
  AIGC_EN_WEAK,         /* lightuserdata(req) -> req, weak values: all live */
  AIGC_EN_LOG,          /* log function or nil */
  AIGC_EN_ERRHANDLER,   /* handler for errors in on_done/on_error/notify */
  AIGC_EN_WATCH_SOCKET, /* external loop: function(fd, what) */
  AIGC_EN_WATCH_TIMER,  /* external loop: function(seconds or nil) */
  AIGC_EN_ERRORS,       /* errors reported and not yet returned by step(): a
                           list, always a table (never nil) */
  AIGC_EN_TASKS,        /* the scheduler (engine:set_scheduler): its tasks table */
  AIGC_EN_TOKEN,        /* the value a task yields to it */
  AIGC_EN_RESUME,       /* resume(co, req) */
  AIGC_EN_NSLOTS = AIGC_EN_RESUME
};

/* Why a transfer was aborted from inside a libcurl callback. */
typedef enum aigc_abort {
  AIGC_ABORT_NONE,
  AIGC_ABORT_LIMIT,      /* response or event bigger than max_bytes */
  AIGC_ABORT_HEADERS,    /* more header bytes than MAX_HEADER_BYTES */
  AIGC_ABORT_NOMEM,
  AIGC_ABORT_IDLE,       /* no byte within the idle timeout (streams) */
  AIGC_ABORT_TOTAL,      /* total timeout (non-streamed) */
  AIGC_ABORT_DEADLINE    /* the whole call's deadline passed */
} aigc_abort;

struct aigc_request {
  aigc_engine *engine;          /* NULL once detached (engine closed) */
  CURL *easy;
  aigc_kind kind;
  aigc_state state;
  int stream;                   /* the caller asked for a stream */
  int mode_decided;             /* sse decided for this attempt */
  int sse;                      /* this response is being parsed as SSE */
  int method_get;

  /* engine lists */
  aigc_request *all_prev, *all_next;     /* every request bound to the engine */
  aigc_request *q_next;                  /* FIFO of queued requests */
  aigc_request *r_prev, *r_next;         /* ready list: something to dispatch */
  int in_queue, in_ready, in_multi;
  int has_slot;                 /* counted in engine->running */
  int end_pending;              /* terminal, and its end (on_done/on_error,
                                   the waiter) is still to be run by the loop;
                                   counted in engine->ends */
  int in_callback;              /* a Lua callback of this request is running */
  int delivering;               /* aigc_request_dispatch is working on it:
                                   its memory is pinned (frees deferred), the
                                   loop does not dispatch it again meanwhile */
  int free_deferred;            /* free_transfer_memory asked while delivering */
  unsigned skip_pass;           /* the dispatch pass that last skipped it */
  int strong;                   /* held in the engine's strong table */
  /* An end decided where no Lua allocation is allowed: the error object
     is made from these when first asked for (static strings). */
  const char *end_kind;
  const char *end_msg;

  /* what to send */
  char *url;
  struct curl_slist *headers;   /* owned */
  aigc_buf body;

  /* settings for this call */
  double timeout;               /* per attempt: total (non-stream) or idle
                                   between bytes (stream), seconds */
  double connect_timeout;       /* per attempt */
  double deadline;              /* the whole call, seconds; 0: none */
  double deadline_at;           /* monotonic time it passes, or 0 */
  int max_retries;
  size_t max_bytes;

  /* progress */
  double started;               /* monotonic time of submit (for logs) */
  int retries;                  /* retries already taken */
  double retry_at;              /* monotonic time of the next attempt, or 0 */
  double idle_deadline;         /* streams: abort if no byte by then, or 0 */
  double done_deadline;         /* after [DONE]: finish by then, or 0 */
  int delivered;                /* stream events delivered to Lua: no retry */
  int stale;                    /* restarts on a new connection (not retries) */
  aigc_abort abort_reason;

  /* response of the current attempt */
  long status;
  aigc_buf resp;                /* non-SSE body */
  aigc_buf hdrs;                /* headers: "name\0value\0"..., names lower-case */
  size_t nhdrs;                 /* headers in hdrs */
  int want_status_line;         /* the next header line starts a response */
  size_t received;              /* body bytes of this attempt */
  int transfer_done;            /* libcurl finished this attempt */
  CURLcode curl_code;
  char errbuf[CURL_ERROR_SIZE];

  /* streaming */
  aigc_sse sse_parser;
  aigc_buf events;              /* queued events: [u32 type_len][u32 data_len][type][data];
                                   libcurl appends here */
  aigc_buf draining;            /* events being delivered (swapped in from
                                   `events`): libcurl never touches it, so a
                                   nested drive cannot move it under us */
  size_t draining_read;         /* read offset in draining */
  int saw_done;                 /* "data: [DONE]" arrived */
  int stream_error;             /* 0, or the kind of a stream failure found */
  aigc_accum accum;
  aigc_json_arena arena;               /* per-chunk parse memory, reset each chunk */
  int want_chunk;               /* the stream callback takes the chunk table */
};

struct aigc_engine {
  CURLM *multi;
  int closed;
  int closing;                  /* close() is canceling requests */

  /* config (copied from the client at creation) */
  char *base_url;               /* no trailing '/' */
  char *query;                  /* "" or "a=b&c=d" without '?' */
  char *model;                  /* default model or NULL */
  char *secret;                 /* the secrets, only to scrub them: a block
                                   "s1\0s2\0\0" (error.c), kept until __gc */
  struct curl_slist *headers;   /* default headers */
  struct curl_slist *stream_headers;  /* the same, Accept: text/event-stream */
  double timeout, connect_timeout;
  double deadline;              /* default for calls; 0: none */
  int max_retries;
  int max_concurrency;          /* 0 = unlimited */
  size_t max_bytes;
  aigc_json_limits json_limits;        /* max_json_values, max_json_containers */
  char *ca_file, *ca_path, *proxy;
  int insecure;
  int log_bodies;               /* log() may include bodies */
  int log_enabled;              /* a log function is set */

  /* sockets libcurl asked us to watch (from CURLMOPT_SOCKETFUNCTION) */
  struct pollfd *watched;       /* exactly what poll() gets */
  size_t nwatched, capwatched;
  int *slot_of_fd;              /* fd -> index + 1 in watched; 0 = none */
  size_t cap_slot_of_fd;
  struct pollfd *ready;         /* scratch: ready sockets of one poll */
  size_t capready;
  /* Linux: the watched sockets also in an epoll set, so that a wait costs
     what is ready, not what is watched (poll() over 256 idle sockets was
     nearly all of a step's cost). -1: poll() only. */
  int epfd;
  unsigned char *ep_fd;         /* fd -> AIGC_EP_* flags */
  size_t cap_ep_fd;
  void *ep_out;                 /* epoll_wait's output (struct epoll_event) */
  size_t cap_ep_out;
  double curl_deadline;         /* from CURLMOPT_TIMERFUNCTION; < 0: none */

  /* an external loop's watcher (eng:watch) */
  int watching, reporting;
  struct aigc_sockchange *changes;   /* socket changes not yet reported */
  size_t nchanges, capchanges;
  double reported_deadline;     /* the deadline last reported, -1 none */

  uint64_t rng;                 /* backoff jitter (xorshift64*) */

  /* Easy handles of ended requests, kept for the next ones: a reused
     handle keeps its buffers and parsed options, where a new one costs
     an allocation of ~25 KiB and its setup (libcurl's own advice). */
  CURL *easy_pool[AIGC_EASY_POOL];
  int neasy_pool;

  /* requests */
  aigc_request *all;
  aigc_request *q_head, *q_tail;
  aigc_request *r_head, *r_tail;
  int running;                  /* requests holding a slot (in libcurl or
                                   between retries) */
  int queued;                   /* requests in the FIFO queue */
  int ends;                     /* requests with end_pending */
  int dispatching;              /* depth of nested dispatch */
  int stepping;                 /* inside step() or act() */
  int in_curl;                  /* inside a libcurl call (debug guard) */
  unsigned pass;                /* dispatch passes so far (see skip_pass) */
  aigc_request *current;        /* the request being dispatched, innermost */
  int ends_deferred;            /* close() ran in a finalizer: the ends of its
                                   canceled requests wait for a step()/wait() */
};

typedef struct aigc_sockchange {
  curl_socket_t fd;
  int what;                     /* CURL_POLL_IN / OUT / INOUT / REMOVE */
} aigc_sockchange;

/* core.c */
AIGC_EXPORT int luaopen_aigc_core (lua_State *L);
/* Pushes "file:line: " of the caller outside aigc's own code (or ""). */
void aigc_push_where (lua_State *L);
/*
** Raises "bad argument #arg to 'fname' (<message>)", located at the
** caller outside aigc's own code (aigc_push_where): the one format of
** misuse. The message's formats are lua_pushfstring's (%s %d %f %p %c).
*/
int aigc_argerror (lua_State *L, int arg, const char *fname, const char *fmt, ...)
  AIGC_PRINTF(4, 5);
/* Who is being called, for the messages of the option readers: argument
   `arg` of function `fname`, a table called `what` ("params", "config"). */
typedef struct aigc_argctx {
  const char *fname;
  int arg;
  const char *what;
} aigc_argctx;
/* The per-call options that are never sent: NULL-terminated, each with
   who reads it ("engine", "client", "dialogue"). */
typedef struct aigc_call_option {
  const char *name;
  const char *reader;
} aigc_call_option;
extern const aigc_call_option aigc_call_options[];
/* Whether k[0..len) is a per-call option (never sent). */
int aigc_is_call_option (const char *k, size_t len);

/* jsonlua.c */
typedef struct aigc_encoder aigc_encoder;
/*
** Encodes the value at idx as JSON appended to out. Raises "bad argument
** #arg to 'fname' (what.path: ...)" for a value JSON cannot carry. `out` must be owned by an
** object that frees it if this raises (a request, or a box on the stack).
*/
void aigc_jsonlua_encode (lua_State *L, int idx, aigc_buf *out, const aigc_argctx *cx);
/*
** Encodes the request params table at idx as the request body: skips the
** control keys (stream callbacks, timeouts, headers...), turns
** `stream = function` into "stream": true, adds the default model and
** stream_options. Raises on values JSON cannot carry.
*/
void aigc_jsonlua_encode_params (lua_State *L, int idx, aigc_buf *out,
                              aigc_kind kind, const char *default_model,
                              int stream, const aigc_argctx *cx);
/* Pushes the Lua form of v (tables, aigc.null, integers kept exact). */
void aigc_jsonlua_push (lua_State *L, const aigc_json_value *v);
/* The same, an object getting `extra` more slots for fields added after. */
void aigc_jsonlua_push_room (lua_State *L, const aigc_json_value *v, int extra);
int  aigc_jsonlua_decode (lua_State *L);   /* aigc.json.decode(s) */
int  aigc_jsonlua_encodefn (lua_State *L); /* aigc.json.encode(v) */

/* error.c */
void aigc_error_open (lua_State *L);
/* Pushes a new error object {kind=, message=} with the error metatable. */
void aigc_error_new (lua_State *L, const char *kind, const char *message);
void aigc_error_setint (lua_State *L, const char *field, lua_Integer v);
void aigc_error_setstr (lua_State *L, const char *field, const char *s, size_t len);
/* Pushes s with every secret of the block (an engine's e->secret, or
   NULL) replaced by "[redacted]". */
void aigc_push_scrubbed (lua_State *L, const char *s, size_t len, const char *secrets);
/* Pushes a "limit" error: "<what> holds <detail> (the limit is max_json_...)". */
void aigc_error_json_limit (lua_State *L, const char *what, const char *detail);
/* The secrets block of an engine config (secret, secrets, auth headers). */
char *aigc_secrets_from_config (lua_State *L, int idx);
void aigc_secrets_free (char *secrets);
/* Scrubs the value at idx (string replaced, table walked in place) against
   the secrets of the engine at eidx. */
void aigc_engine_scrub (lua_State *L, int eidx, int idx);
int  aigc_engine_scrub_method (lua_State *L);   /* engine:scrub(v) -> v */
/* Pushes a log line scrubbed against the secrets of the engine at eidx. */
void aigc_engine_push_log_line (lua_State *L, int eidx, const char *msg, size_t len);

/* engine.c */
void aigc_engine_open (lua_State *L);
double aigc_now (void);
aigc_engine *aigc_check_engine (lua_State *L, int idx);
void aigc_engine_link (aigc_engine *e, aigc_request *r);
void aigc_engine_unlink (aigc_engine *e, aigc_request *r);
void aigc_engine_ready (aigc_engine *e, aigc_request *r);
void aigc_engine_unready (aigc_engine *e, aigc_request *r);
void aigc_engine_start (aigc_engine *e, aigc_request *r);
void aigc_engine_release (aigc_engine *e, aigc_request *r);
CURL *aigc_engine_take_easy (aigc_engine *e, int *fresh);
/* Sets the engine's socket open/close callbacks on a new easy handle. */
void aigc_engine_socket_options (aigc_engine *e, CURL *easy);
void aigc_engine_recycle_easy (aigc_engine *e, CURL *easy);
void aigc_engine_hold (lua_State *L, int eidx, aigc_request *r, int ridx, int strong);
void aigc_engine_drop (lua_State *L, int eidx, aigc_request *r);
int  aigc_engine_push_request (lua_State *L, int eidx, aigc_request *r);
void aigc_engine_log (lua_State *L, int eidx, const char *level, const char *fmt, ...)
  AIGC_PRINTF(4, 5);
void aigc_engine_report (lua_State *L, int eidx, int erridx);
/*
** One turn of the loop. Never raises: returns the number of callbacks run,
** or, when an error escaped the Lua part (out of memory, an interrupt), sets
** *status to its code and leaves the error on the stack, with the engine
** consistent again (counters restored, the request being delivered ended).
** The caller raises it (lua_error) after its own clean-up.
*/
typedef struct aigc_hooks aigc_hooks;
int  aigc_engine_drive (lua_State *L, int eidx, double timeout, int budget,
                        aigc_hooks *hooks, int *status);
int  aigc_pcall (lua_State *L, int nargs, int nresults);
/* Request end bookkeeping (engine->ends). */
void aigc_engine_set_end (aigc_engine *e, aigc_request *r);
void aigc_engine_clear_end (aigc_engine *e, aigc_request *r);
/* Requests queued, running, or with an end still to deliver. */
int  aigc_engine_count (const aigc_engine *e);
/*
** Interrupts (Ctrl-C in the standalone interpreter installs a debug hook
** from its signal handler; so do hosts that stop runaway scripts).
*/
struct aigc_hooks {   /* the debug hooks a wait started with */
  lua_Hook hook, main_hook;
  int mask, count, main_mask;
};
void aigc_hooks_snap (lua_State *L, aigc_hooks *h);
int  aigc_hooks_changed (lua_State *L, const aigc_hooks *h);
/*
** Gives a newly installed hook its chance to run: returns LUA_OK (the hook
** did not raise; *h is updated) or the error status with the error on the
** stack, marked as an interrupt.
*/
int  aigc_interrupt_probe (lua_State *L, aigc_hooks *h);
/* Whether the value at idx is the error of an interrupt (raised in a hook). */
int  aigc_is_interrupt (lua_State *L, int idx);
void aigc_interrupt_forget (lua_State *L);   /* at an outermost call */
void aigc_interrupt_open (lua_State *L);     /* once, at luaopen */
/* Whether we run inside a __gc finalizer. */
int  aigc_in_finalizer (lua_State *L);
double aigc_engine_random (aigc_engine *e);
double aigc_opt_deadline (lua_State *L, int t, const aigc_argctx *cx, double def);
void aigc_check_header (lua_State *L, const char *line, size_t len);
double aigc_opt_seconds (lua_State *L, int t, const aigc_argctx *cx, const char *field,
                         double def);
int64_t aigc_opt_integer (lua_State *L, int t, const aigc_argctx *cx, const char *field,
                          int64_t def, int64_t lo, int64_t hi);
struct curl_slist *aigc_build_headers (lua_State *L, int idx);

/* request.c */
void aigc_request_open (lua_State *L);
aigc_request *aigc_check_request (lua_State *L, int idx);
int  aigc_request_submit (lua_State *L);   /* engine:submit(kind, params [, opts]) */
int  aigc_request_setup_attempt (aigc_request *r);
void aigc_request_detach (aigc_request *r);
/* Dispatches what is pending for r (its userdata at ridx, the engine at
** eidx): stream events, then completion. Returns the callbacks run. */
int  aigc_request_dispatch (lua_State *L, int eidx, int ridx, int budget);
/*
** Cancels the request at ridx if it is not over. Allocates nothing: the
** error object is made later (from `why`, a static string, or the string
** at why_idx when why_idx != 0). Its on_error and waiter run from the loop.
*/
void aigc_request_cancel (lua_State *L, int ridx, const char *why, int why_idx);
/*
** Ends r now with a failure decided without a Lua allocation (kind and
** msg: static strings): when an error escaped a delivery, or a wait finds
** the request can never start. The engine's userdata is at eidx.
*/
void aigc_request_end_static (lua_State *L, int eidx, aigc_request *r, aigc_state state,
                              const char *kind, const char *msg);
/* Runs r's pending end: on_done/on_error, then the waiter. Returns callbacks run. */
int  aigc_request_deliver_end (lua_State *L, int eidx, int ridx);
/* Ends every pending delivery of r's memory (after an escaped error). */
void aigc_request_unpin (aigc_request *r);

#endif
