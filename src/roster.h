/*
** roster.h — the part of an engine its requests see, in plain C (no Lua):
** the lists of its requests, its concurrency slots, its idle easy handles,
** and the client's configuration a request reads.
**
** A request is on up to three lists, through the aigc_roster_entry that is
** its first member:
**   all      every request bound to the engine (its own; a closed engine
**            keeps only those whose end is still to be delivered);
**   queue    requests waiting for a slot (max_concurrency): one FIFO per
**            priority class (interactive, normal, background), served
**            highest class first, each class within its own cap
**            (max_concurrency_by_priority);
**   ready    requests with something for the loop to deliver: stream
**            events, a finished transfer, an end (on_done / on_error /
**            waiters);
**   held     transfers paused by max_bytes_per_step (the turn's bytes were
**            spent when libcurl had more for them), resumed in this order
**            at the start of the next turns (transfer.c).
** `running` counts the requests holding a slot (in libcurl, or waiting
** for a retry), `queued` those in the queue, `ends` those whose end is
** still to be delivered: what step() counts (aigc_roster_count).
**
** Every function here is plain C and allocates nothing, so it is safe
** anywhere, __gc included (a finalizer may unlink a request while the
** engine walks its lists: every walk that can run Lua pops from a list
** head or re-reads its cursor).
*/
#ifndef AIGC_ROSTER_H
#define AIGC_ROSTER_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "buf.h"
#include "json.h"
#include "timers.h"

#define AIGC_EASY_POOL 32    /* idle easy handles an engine keeps */
#define AIGC_SPARE_BUFS 3    /* a stream's two event buffers (events, draining), a header store's */
#define AIGC_SPARE_BUF_MAX ((size_t)64 * 1024)

/*
** What an easy handle was last given of the options that may differ
** between two requests of an engine: transfer.c sets such an option only
** when it changes (libcurl copies a URL and parses its string options on
** every set). It travels with the handle: in the pool, then in the request
** that took it.
*/
typedef struct aigc_easy_memo {
  char *url;                         /* a copy of CURLOPT_URL (NULL: none yet) */
  const struct curl_slist *headers;  /* CURLOPT_HTTPHEADER, when have_headers */
  int have_headers;
  int method;                        /* CURLOPT_CUSTOMREQUEST: 0 none yet, 1 NULL, 2 DELETE */
  long connect_ms, timeout_ms;       /* CURLOPT_CONNECTTIMEOUT_MS, CURLOPT_TIMEOUT_MS (-1: none yet) */
  int progress;                      /* CURLOPT_NOPROGRESS's opposite (-1: none yet) */
} aigc_easy_memo;

/* A request's priority class: its queue, and its cap of slots. A lower
   number starts first; "normal" is the default. */
enum { AIGC_PRIO_INTERACTIVE, AIGC_PRIO_NORMAL, AIGC_PRIO_BACKGROUND, AIGC_NPRIO };
/* Their names, as calls give them (`priority = "background"`); NULL-ended. */
extern const char *const aigc_priority_names[AIGC_NPRIO + 1];

typedef struct aigc_roster_entry aigc_roster_entry;
struct aigc_roster_entry {
  aigc_roster_entry *all_prev, *all_next;
  aigc_roster_entry *q_prev, *q_next;
  aigc_roster_entry *r_prev, *r_next;
  aigc_roster_entry *h_prev, *h_next;
  int in_queue, in_ready, in_held;
  int has_slot;                 /* counted in running (and running_by) */
  int priority;                 /* AIGC_PRIO_*: set before it is queued, never changed */
  int end_pending;              /* its end is still to be delivered: in ends */
  int delivering;               /* the loop is delivering it (its request's
                                   `delivering` is not 0): counted in `blocked`
                                   while it holds a slot */
  unsigned skip_pass;           /* the dispatch pass that last skipped it */
  aigc_timed timed;             /* its entry in the engine's timers (timers.h) */
};

/* The entry whose aigc_timed is tm. */
#define aigc_roster_entry_of_timed(tm) \
  ((aigc_roster_entry *)(void *)((char *)(tm) - offsetof(aigc_roster_entry, timed)))

/* What the client was created with (a copy, freed with the engine). */
typedef struct aigc_config {
  char *base_url;               /* no trailing '/' */
  char *query;                  /* "" or "a=b&c=d" without '?' */
  char *model;                  /* default model or NULL */
  struct curl_slist *headers;   /* default headers */
  struct curl_slist *stream_headers;  /* the same, Accept: text/event-stream */
  double timeout, connect_timeout;
  double deadline;              /* default for calls; 0: none */
  int max_retries;
  int max_concurrency;          /* 0 = unlimited */
  int max_starts_per_step;      /* requests a turn may hand to libcurl; 0 = unlimited */
  int max_by_priority[AIGC_NPRIO];  /* slots a class may hold; 0 = up to max_concurrency */
  size_t max_bytes;
  size_t max_bytes_per_step;    /* reply bytes a turn may take in; 0 = unlimited */
  aigc_json_limits json_limits; /* max_json_values, max_json_containers */
  char *ca_file, *ca_path, *proxy;
  char *proxy_shown;            /* the proxy libcurl takes, for connection errors
                                   ("http://host:port, from $https_proxy"), or NULL */
  int insecure;
  int done_optional;            /* require_done = false: a chat stream whose body
                                   ended well after every choice's finish_reason
                                   is whole without [DONE] (response.c) */
  int log_bodies;               /* log() may include bodies */
  int log_enabled;              /* a log function is set */
  int no_stream_options;        /* a server refused the default stream_options: streams
                                   go without it from then on (transfer.c) */
  char *secret;                 /* the secrets, only to scrub them: a block
                                   "s1\0s2\0\0" (redact.c), kept until the
                                   engine is collected (not freed by close) */
} aigc_config;

/* Keys of one of the engine's tables (slots.c): those given back, for the
   next request, and the next never given. cap >= next: a give-back never
   allocates. */
typedef struct aigc_slot_pool {
  int *free;
  int nfree, cap, next;
} aigc_slot_pool;

typedef struct aigc_roster {
  CURLM *multi;
  int closed;
  int closing;                  /* close() is canceling requests */
  aigc_config config;
  aigc_roster_entry *all;
  aigc_roster_entry *q_head[AIGC_NPRIO], *q_tail[AIGC_NPRIO];
  aigc_roster_entry *r_head, *r_tail;
  aigc_roster_entry *h_head, *h_tail;   /* held (max_bytes_per_step) */
  size_t bytes_this_turn;       /* reply bytes taken in since the turn began */
  int running, queued, ends;
  double turn_ended;            /* when the last turn of the loop ended (or the engine was made) */
  double poll_began;            /* when this turn began to read the sockets */
  int started_this_turn;        /* requests handed to libcurl since the turn began
                                   (aigc_loop_drive): max_starts_per_step holds the rest */
  aigc_slot_pool slots;         /* the keys of the engine's tables of handles (slots.c) */
  aigc_slot_pool cores;         /* the keys of its table of cores (slots.c) */
  int unlisted_ends;            /* watched requests that ended off the ended list
                                   (request.c note_watched_end, ended_quietly):
                                   eng:take_ended says so */
  int running_by[AIGC_NPRIO];   /* running, per priority class */
  /* Of those, the ones being delivered (a callback up the stack may wait
     for a queued request: engine.c cannot_start), in all and per class. */
  int blocked, blocked_by[AIGC_NPRIO];
  aigc_roster_entry *current;   /* the request being dispatched, innermost */
  CURL *easy_pool[AIGC_EASY_POOL];   /* easy handles of ended requests, kept
                                   for the next ones: a reused handle keeps
                                   its buffers and parsed options, where a new
                                   one costs ~25 KiB and its setup */
  aigc_easy_memo easy_memo[AIGC_EASY_POOL];   /* what each was last given */
  int neasy_pool;
  /* Stream event buffers of ended requests, kept for the next streams: a
     stream's queue grows to its burst (64 KiB when a server sends the whole
     stream at once) and regrowing it by realloc in every request cost ~40
     instructions per chunk, and a varying amount (in place or moved, by the
     heap's layout). And their header stores' buffers (2 KiB: a malloc and a
     free per request less). At most AIGC_SPARE_BUFS of at most
     AIGC_SPARE_BUF_MAX bytes each: an idle client keeps <= 192 KiB. */
  aigc_buf spare_bufs[AIGC_SPARE_BUFS];
  int nspare_bufs;
  /* The JSON arena block of an ended request, kept for the next reply's
     parse (one block, at most AIGC_SPARE_BUF_MAX bytes): a malloc and a
     free of 4 KiB per reply less. */
  aigc_json_arena spare_arena;
  uint64_t rng;                 /* retry jitter (xorshift64*) */
  /* The requests' own timers (deadline, retry, idle, [DONE] grace), one
     entry per request that has one (timers.h): a step fires what is due
     in O(due log n), and looks at no other request. */
  aigc_timers timers;
  size_t nall;                  /* requests on the all list (room kept in timers) */
  /* How the engine's easy handles open and close their sockets (set on
     every new handle: the engine's poller hears of each socket). */
  curl_opensocket_callback open_socket;
  curl_closesocket_callback close_socket;
  void *socket_data;
} aigc_roster;

void aigc_roster_init (aigc_roster *ro, uint64_t seed);

void aigc_roster_link (aigc_roster *ro, aigc_roster_entry *en);
/* Takes en off every list (and its slot, its end): the request is no longer
   the engine's. */
void aigc_roster_unlink (aigc_roster *ro, aigc_roster_entry *en);

void aigc_roster_enqueue (aigc_roster *ro, aigc_roster_entry *en);
void aigc_roster_dequeue (aigc_roster *ro, aigc_roster_entry *en);
void aigc_roster_ready (aigc_roster *ro, aigc_roster_entry *en);
void aigc_roster_unready (aigc_roster *ro, aigc_roster_entry *en);
/* A transfer paused by max_bytes_per_step goes to the held list's tail;
   one resumed, or over, comes off it (nothing if it is not on it). */
void aigc_roster_hold (aigc_roster *ro, aigc_roster_entry *en);
void aigc_roster_unhold (aigc_roster *ro, aigc_roster_entry *en);

/* Whether a slot is free (max_concurrency), whether one is free for a
   request of class prio (its cap too), and taking / giving one back. */
int  aigc_roster_slot_free (const aigc_roster *ro);
int  aigc_roster_slot_free_for (const aigc_roster *ro, int prio);
/* The queued request to start next (the oldest of the highest class that
   may take a slot now), or NULL. */
aigc_roster_entry *aigc_roster_next_queued (const aigc_roster *ro);
/* Whether this turn may still hand a request to libcurl (max_starts_per_step). */
int  aigc_roster_may_start (const aigc_roster *ro);
void aigc_roster_take_slot (aigc_roster *ro, aigc_roster_entry *en);
void aigc_roster_give_slot (aigc_roster *ro, aigc_roster_entry *en);
/* en's request begins (on != 0) or ends being delivered: counted in
   blocked while it holds a slot. ro may be NULL when en holds none. */
void aigc_roster_set_delivering (aigc_roster *ro, aigc_roster_entry *en, int on);

/* The request's end is to be delivered (it goes on the ready list), or was. */
void aigc_roster_set_end (aigc_roster *ro, aigc_roster_entry *en);
void aigc_roster_clear_end (aigc_roster *ro, aigc_roster_entry *en);

/*
** What step(), act() and active() count: requests queued or running, and
** those whose end the loop has still to deliver (a closed engine: only
** those), so that `while client:step() > 0 do end` delivers everything.
*/
int aigc_roster_count (const aigc_roster *ro);

/* An easy handle for a new request, with its memo (moved to *memo): an
   idle one (*fresh = 0: it has the engine's options already), else a new
   one (*fresh = 1, an empty memo), or NULL. */
CURL *aigc_roster_take_easy (aigc_roster *ro, int *fresh, aigc_easy_memo *memo);
/* Takes back the handle of an ended request (out of libcurl) and its memo
   (moved from *memo): kept while the pool has room and the engine is open,
   else cleaned up. */
void aigc_roster_give_easy (aigc_roster *ro, CURL *easy, aigc_easy_memo *memo);
/* Frees a memo's copy and empties it. */
void aigc_easy_memo_clear (aigc_easy_memo *memo);
/* Cleans up every idle handle, and frees the spare event buffers and arena. */
void aigc_roster_drain_easy (aigc_roster *ro);
/* Moves *b (emptied) into the spare buffers when the engine is open, there
   is room and it is not too large (returns 1); else leaves it (returns 0). */
int aigc_roster_keep_buf (aigc_roster *ro, aigc_buf *b);
/* Moves a spare buffer (emptied) into *b, which has none, if there is one. */
void aigc_roster_take_buf (aigc_roster *ro, aigc_buf *b);
/* Frees the arena a's blocks, its newest (if not too large) kept as the
   spare when the engine is open and has none (ro may be NULL). */
void aigc_roster_keep_arena (aigc_roster *ro, aigc_json_arena *a);
/* Moves the spare arena block into a, which has none, if there is one. */
void aigc_roster_take_arena (aigc_roster *ro, aigc_json_arena *a);

/* A uniform random number in [0, 1) (retry jitter). */
double aigc_roster_random (aigc_roster *ro);

/* Frees the configuration's copies, but the secrets (see aigc_config). */
void aigc_config_free (aigc_config *c);

#endif
