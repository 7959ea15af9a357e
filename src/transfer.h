/*
** transfer.h — one request's transfer, in C (no Lua): the request's state,
** the libcurl callbacks (they never call Lua), its attempts, its timers.
** When and how an attempt is sent again: retry.h. The Lua side of a
** request is in response.h (a finished transfer made into Lua values) and
** request.h (its life and methods).
**
** THE RE-ENTRANCY RULE (aigc.h): nothing here allocates Lua memory, so
** nothing here can run a finalizer; but a finalizer run elsewhere may call
** the functions below at any moment (cancel, close), which is why the
** transfer's memory is freed only when the request is not being delivered
** (aigc_transfer_free_memory defers it while `delivering`).
*/
#ifndef AIGC_TRANSFER_H
#define AIGC_TRANSFER_H

#include <stdint.h>
#include <string.h>

#include <curl/curl.h>

#include "accum.h"
#include "body.h"
#include "buf.h"
#include "headers.h"
#include "json.h"
#include "raccum.h"
#include "roster.h"
#include "sse.h"

/* What a request is for: decides the body's extras, parsing and streaming. */
typedef enum aigc_kind {
  AIGC_KIND_CHAT,        /* POST /chat/completions: choices[].message */
  AIGC_KIND_COMPLETION,  /* POST /completions: choices[].text */
  AIGC_KIND_JSON,        /* any other JSON POST (embeddings, ...) */
  AIGC_KIND_GET,         /* GET, no body (models) */
  AIGC_KIND_RESPONSES,   /* POST /responses: typed stream events (raccum.h) */
  AIGC_KIND_DELETE       /* DELETE, no body (a stored response, a file) */
} aigc_kind;

/* Kinds that send no body. */
#define aigc_kind_bodiless(k) ((k) == AIGC_KIND_GET || (k) == AIGC_KIND_DELETE)
/* The HTTP method of a kind. */
#define aigc_kind_method(k) \
  ((k) == AIGC_KIND_GET ? "GET" : (k) == AIGC_KIND_DELETE ? "DELETE" : "POST")
/* A request's method (opts.method may change its kind's) and whether it sends no body. */
#define aigc_request_method(r) ((r)->xb.method == AIGC_METHOD_DELETE ? "DELETE" \
  : (r)->xb.method == AIGC_METHOD_GET ? "GET" : aigc_kind_method((r)->kind))
#define aigc_request_bodiless(r) (aigc_kind_bodiless((r)->kind) || (r)->xb.method == AIGC_METHOD_GET)

typedef enum aigc_state {
  AIGC_QUEUED,     /* submitted, waiting for a concurrency slot */
  AIGC_RUNNING,    /* in libcurl, or waiting for a retry timer */
  AIGC_DONE,
  AIGC_FAILED,
  AIGC_CANCELED
} aigc_state;

#define aigc_terminal(st) ((st) >= AIGC_DONE)

/* Bytes of a stream's body kept to say what came when it held no event. */
#define AIGC_STREAM_HEAD 256

/* Why a transfer was aborted from inside a libcurl callback or a timer. */
typedef enum aigc_abort {
  AIGC_ABORT_NONE,
  AIGC_ABORT_LIMIT,      /* response or event bigger than max_bytes */
  AIGC_ABORT_HEADERS,    /* more header bytes than AIGC_MAX_HEADER_BYTES */
  AIGC_ABORT_NOMEM,
  AIGC_ABORT_IDLE,       /* no byte within the idle timeout (streams) */
  AIGC_ABORT_DEADLINE,   /* the whole call's deadline passed */
  AIGC_ABORT_SINK,       /* the reply's file could not be written (body.h) */
  AIGC_ABORT_UPLOAD      /* an upload's file could not be sent whole (body.h) */
} aigc_abort;

typedef struct aigc_request aigc_request;
struct aigc_request {
  aigc_roster_entry entry;      /* first: its place in the engine's lists */
  aigc_roster *roster;          /* its engine's; NULL once detached (closed) */
  const char *secrets;          /* the engine's secrets block (error.h): valid
                                   while the request lives, which holds its
                                   engine's userdata; or own_secrets */
  char *own_secrets;            /* the engine's and the call's header
                                   credentials (submit.c), freed by req_gc */
  char *log_secrets;            /* secrets and more for its log lines only
                                   (opts.log_secrets: submit.c), or NULL;
                                   freed by req_gc */
  CURL *easy;
  aigc_easy_memo easy_memo;     /* what easy was last given (roster.h) */
  aigc_kind kind;
  aigc_state state;
  int stream;                   /* the caller asked for a stream */
  int mode_decided;             /* sse decided for this attempt */
  int sse;                      /* this response is being parsed as SSE */
  int in_multi;                 /* its easy handle is in libcurl */
  aigc_request *finished_next;  /* loop.c collect_finished: its transfer's end read, its handle
                                   not yet removed (only within that function) */
  CURLcode finished_code;       /* that end's code (the same) */
  int in_callback;              /* a Lua callback of this request is running */
  int delivering;               /* the loop is delivering it (request.c): its
                                   memory is pinned (frees deferred), the loop
                                   does not dispatch it again meanwhile */
  int free_deferred;            /* aigc_transfer_free_memory asked meanwhile */
  int memory_freed;             /* aigc_transfer_free_memory has run: nothing
                                   left to free (a request ends once) */
  int strong;                   /* held in the engine's strong table */
  int want_chunk;               /* the stream callback takes the chunk table */
  int has_stream_end;           /* an on_stream_end callback is set (request.c) */
  /* An end decided where no Lua allocation is allowed: the error object
     is made from these when first asked for (static strings). */
  const char *end_kind;
  const char *end_msg;

  /* what to send */
  char *url;
  struct curl_slist *headers;   /* owned: the call's own, or NULL */
  aigc_buf body;
  aigc_body xb;                 /* a form, DELETE, a non-JSON reply (body.h) */

  /* settings for this call */
  double timeout;               /* per attempt: total (a plain call) or idle
                                   between bytes (a stream, a file), seconds */
  double connect_timeout;       /* per attempt */
  double deadline;              /* the whole call, seconds; 0: none */
  double deadline_at;           /* monotonic time it passes, or 0 */
  int max_retries;
  size_t max_bytes;

  /* progress */
  double started;               /* monotonic time of submit (for logs) */
  int retries;                  /* retries already taken */
  double retry_at;              /* monotonic time of the next attempt, or 0 */
  double idle_deadline;         /* a stream, a file upload or binary download:
                                   abort if no byte moved by then, or 0 */
  int idle_forgiven;            /* this attempt's limit (idle, or attempt_deadline)
                                   passed during a stall of the host, and was
                                   restarted (transfer.c, host_stalled) */
  double attempt_deadline;      /* a non-streamed call of a client with
                                   max_bytes_per_step: its attempt's timeout, in
                                   place of libcurl's, pushed back by the time it
                                   was held (transfer.c), or 0 */
  double held_since;            /* when max_bytes_per_step last held it */
  double done_deadline;         /* after [DONE]: finish by then, or 0 */
  int delivered;                /* stream events delivered to Lua: no retry */
  int error_held;               /* a Responses "error" event's error waits in
                                   AIGC_RQ_HELD for the event after it (request.c) */
  int stale;                    /* restarts on a new connection (not retries) */
  int fresh_only;               /* a reader's upload: on a new connection (transfer.c) */
  int h2_resent;                /* sent again after an HTTP/2 early answer (transfer.c) */
  int expect_resent;            /* sent again without Expect after a 417 (retry.c) */
  int task_waiter_raises;       /* raises in a row of a task's waiter (request.c run_waiters) */
  size_t default_so_len;        /* the body ends with the default stream_options (these
                                   bytes before its '}'; submit.c), 0: it does not */
  int h2_early_watch;           /* done_deadline polls for that answer's end (transfer.c) */
  int slot;                     /* its key in the engine's tables of handles (slots.c), 0: none */
  int core_slot;                /* its core's key in the engine's table of cores, 0: none */
  int watched;                  /* opts.watch: its end goes on the engine's ended list
                                   (request.c note_watched_end), once */
  aigc_abort abort_reason;

  /* response of the current attempt */
  long status;
  aigc_buf resp;                /* non-SSE body */
  aigc_headers hdrs;
  size_t received;              /* body bytes of this attempt */
  curl_off_t sent;              /* request body bytes libcurl sent (files only:
                                   on_progress) */
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
  int saw_done;                 /* "data: [DONE]" (or a Responses final event) arrived */
  int eof_clean;                /* no [DONE], but the body ended well between
                                   events (response.c push_stream_outcome) */
  int sse_events;               /* the parser dispatched an event this attempt */
  size_t head_len;
  char head[AIGC_STREAM_HEAD];  /* the first body bytes of an SSE attempt, kept
                                   until an event comes: what to show if none
                                   does (response.c push_not_event_stream) */
  aigc_accum accum;
  aigc_raccum raccum;           /* AIGC_KIND_RESPONSES streams: the response */
  aigc_json_arena arena;        /* per-chunk parse memory, reset each chunk */
};

/* Pushes the request id of r's answer and returns 1, or returns 0: x-request-id,
   else apim-request-id (an Azure API Management gateway's own error carries
   only that); repeated, its lines joined with ", " as in res.headers (the
   first alone was kept: a proxy's id before the server's hid the server's). */
static inline int aigc_push_request_id (lua_State *L, const aigc_request *r) {
  return aigc_headers_push_all(L, &r->hdrs, "x-request-id")
         || aigc_headers_push_all(L, &r->hdrs, "apim-request-id");
}

/* The secrets r's log lines are scrubbed of: log_secrets when given (a
   download's hop: its URLs' credentials, which its error keeps for the Lua
   layer to follow a redirect and scrub after), else its errors' ones. */
static inline const char *aigc_log_secrets (const aigc_request *r) {
  return r->log_secrets != NULL ? r->log_secrets : r->secrets;
}

/* The request whose roster entry is en (the entry is its first member). */
#define aigc_request_of(en) ((aigc_request *)(void *)(en))
#define aigc_const_request_of(en) ((const aigc_request *)(const void *)(en))

/*
** A new request's C half, in memory the caller zeroed: settings from the
** client's configuration, parsers and limits ready. Bound to the engine
** only by aigc_transfer_link.
*/
void aigc_transfer_init (aigc_request *r, aigc_roster *ro, aigc_kind kind, int stream);

/* Results of aigc_transfer_prepare. */
enum {
  AIGC_PREPARE_OK = 0,
  AIGC_PREPARE_NOMEM,
  AIGC_PREPARE_NOHANDLE,        /* curl_easy_init failed */
  AIGC_PREPARE_OPTIONS          /* an option was refused (ca_file, proxy...) */
};
/* Builds the URL (base URL, path, the query or the client's), takes an
   easy handle and sets its options. */
int aigc_transfer_prepare (aigc_request *r, const char *path, const char *query);
/* Binds r to its engine's lists, queued, the call's clock started. */
void aigc_transfer_link (aigc_request *r);

/* The engine gives r a slot and starts its first attempt, or queues it. */
void aigc_transfer_start (aigc_request *r);
void aigc_transfer_queue (aigc_request *r);
/* libcurl finished the current attempt with `code`. */
void aigc_transfer_done (aigc_request *r, CURLcode code);
/* Fires r's own timers due at `now`: the call's deadline, a retry, the
   stream's idle limit, the grace after [DONE]. */
void aigc_transfer_tick (aigc_request *r, double now);
/* The earliest of r's timers, or d if it comes first (d < 0: none). */
double aigc_transfer_next_deadline (const aigc_request *r, double d);
/* r set (or made relevant) a timer: its entry in the engine's timers comes
   forward to it (timers pushed later need nothing: an early entry fires,
   finds nothing due and goes back at the real one; timers.h). Shared with
   retry.c, which sets retry_at; inline, as when it was transfer.c's own
   static function. */
static inline void aigc_transfer_timers_changed (aigc_request *r) {
  if (r->roster != NULL)
    aigc_timers_set(&r->roster->timers, &r->entry.timed, aigc_transfer_next_deadline(r, -1));
}

/* `draining` all read: the events queued since swapped in (1), or 0 when
   there are none. */
int aigc_transfer_refill (aigc_request *r);
/* The next queued stream event (moved to `draining` as needed): 1 and its
   parts, or 0 when there is none. Inline: once per stream chunk. */
static inline int aigc_transfer_next_event (aigc_request *r, const char **type, size_t *tlen,
                                            const char **data, size_t *dlen) {
  uint32_t lens[2];
  const char *p;
  if (r->draining_read >= r->draining.len && !aigc_transfer_refill(r))
    return 0;
  p = r->draining.data + r->draining_read;
  memcpy(lens, p, sizeof lens);
  r->draining_read += sizeof lens + lens[0] + lens[1];
  *type = p + sizeof lens;
  *tlen = lens[0];
  *data = p + sizeof lens + lens[0];
  *dlen = lens[1];
  return 1;
}
/* Whether every queued event was delivered. */
int aigc_transfer_drained (const aigc_request *r);

/* The attempt is over: its HTTP status as libcurl saw it. */
void aigc_transfer_take_status (aigc_request *r);
/* A Responses "error" event's error is held (request.c): the server has
   AIGC_DONE_GRACE to send what follows it (a response.failed) and end the
   response, else the transfer ends there (as after [DONE]). */
void aigc_transfer_grace (aigc_request *r);

/* Starts queued requests while slots are free (FIFO), unless the engine
   is closing. */
void aigc_transfer_start_queued (aigc_roster *ro);
/* A turn of the loop begins: max_bytes_per_step counts again, and the
   transfers it held resume (the longest held first) while bytes are left. */
void aigc_transfer_new_turn (aigc_roster *ro);
/* Out of libcurl, the queue and its slot (its end or a cancel): queued
   requests start in the slot it frees. */
void aigc_transfer_release (aigc_request *r);
/* The transfer is over for good: its easy handle goes back to the engine. */
void aigc_transfer_recycle (aigc_request *r);
/* Frees what only a pending request needs (deferred while delivering). */
void aigc_transfer_free_memory (aigc_request *r);
/* The engine closed, or the request is collected: off every list, out of
   libcurl, detached; the handle's callbacks forget the engine. */
void aigc_transfer_detach (aigc_request *r);
/* Everything the request owns, for its __gc. */
void aigc_transfer_free (aigc_request *r);

/* The path of the URL for log lines: no scheme, host or query. When it
   does not fit in size bytes (AIGC_LOG_PATH), cut at a character and
   before the start of a secret (text follows it in a line: the scrub
   would see no cut secret), then "…". */
#define AIGC_LOG_PATH 259
const char *aigc_transfer_path (const aigc_request *r, char *buf, size_t size);

#endif
