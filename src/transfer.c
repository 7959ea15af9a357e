/*
** transfer.c — one request's transfer in C (transfer.h): the libcurl
** callbacks (on_header, on_write, on_sse_event: they append bytes, feed the
** SSE parser and queue events, never call Lua), the easy handle's options,
** attempts, the request's own timers, and the request's moves between the
** engine's lists (roster.h). Retries and other attempts sent again: retry.c.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "transfer.h"
#include "error.h"

static aigc_accum_kind accum_kind (aigc_kind kind) {
  return kind == AIGC_KIND_COMPLETION ? AIGC_ACCUM_COMPLETION : AIGC_ACCUM_CHAT;
}

/* A part fed by a function wants bytes (body.h): the loop calls it. */
static void wake_request (void *arg) {
  aigc_request *r = (aigc_request *)arg;
  if (r->roster != NULL)
    aigc_roster_ready(r->roster, &r->entry);
}

void aigc_transfer_init (aigc_request *r, aigc_roster *ro, aigc_kind kind, int stream) {
  const aigc_config *c = &ro->config;
  r->xb.wake = wake_request;
  r->xb.wake_arg = r;
  r->roster = ro;
  r->secrets = c->secret;
  r->state = AIGC_CANCELED;   /* "closed" until it is handed to the engine */
  r->kind = kind;
  r->stream = stream;
  r->entry.priority = AIGC_PRIO_NORMAL;   /* a call's params.priority may change it */
  r->timeout = c->timeout;
  r->connect_timeout = c->connect_timeout;
  r->deadline = c->deadline;
  r->max_retries = c->max_retries;
  r->max_bytes = c->max_bytes;
  aigc_sse_init(&r->sse_parser, r->max_bytes);
  aigc_accum_init(&r->accum, accum_kind(kind));
  aigc_json_arena_init(&r->arena);
  r->arena.limits = c->json_limits;
  r->accum.limits = c->json_limits;
  aigc_raccum_init(&r->raccum);
  r->raccum.limits = c->json_limits;
}


/*
** {======================================================
** libcurl callbacks: C only, never Lua
** =======================================================
*/

/*
** An HTTP/2 answer the server sent before it had the whole request body
** (see h2_early_answer below): with a body bigger than the stream's window
** (nginx: 64 KiB), libcurl before 8.3 never ends the transfer: it receives
** the whole answer, then goes on trying to upload to the closed stream
** until the attempt's timeout, and the answer is lost. So when a final
** answer's headers come while the upload is unfinished, the loop looks
** every H2_EARLY_POLL s (done_deadline; aigc_transfer_tick) and ends the
** attempt with it once it is complete by its Content-Length. A body under
** H2_EARLY_MIN_BODY fits the stream window of any server seen (HTTP/2's
** default is 64 KiB): libcurl sends it whole at once, and no call is made.
*/
#define H2_EARLY_POLL 0.05
#define H2_EARLY_MIN_BODY 16384

static int h2_answer_complete (const aigc_request *r) {
  curl_off_t got = -1, announced = -1;
  curl_easy_getinfo(r->easy, CURLINFO_SIZE_DOWNLOAD_T, &got);
  curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
  return announced >= 0 && got == announced;
}

static void watch_h2_early_answer (aigc_request *r) {
  long version = 0;
  curl_off_t sent = 0, size = (curl_off_t)r->body.len, announced = -1;
  if (r->xb.mime != NULL)   /* libcurl's size of the form, -1 when unknown */
    curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_UPLOAD_T, &size);
  curl_easy_getinfo(r->easy, CURLINFO_SIZE_UPLOAD_T, &sent);
  if (sent >= size)
    return;
  curl_easy_getinfo(r->easy, CURLINFO_HTTP_VERSION, &version);
  curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
  if (version == CURL_HTTP_VERSION_2_0 && announced >= 0) {
    r->h2_early_watch = 1;
    r->done_deadline = aigc_now() + H2_EARLY_POLL;
    aigc_transfer_timers_changed(r);
  }
}

/* Whether a 2xx answer's headers, just ended, announce a body over
   max_response_bytes (a hostile server's 10 GB download): refused at once,
   not after max_response_bytes of it were read (into a file, maybe). Not
   a compressed one: the limit counts the bytes decoded. */
static int announced_too_big (const aigc_request *r) {
  curl_off_t announced = -1;
  size_t vlen;
  if (r->status < 200 || r->status >= 300 || aigc_headers_find(&r->hdrs, "content-encoding", &vlen) != NULL)
    return 0;
  curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
  return announced >= 0 && (unsigned long long)announced > (unsigned long long)r->max_bytes;
}

static size_t on_header (char *buf, size_t size, size_t nitems, void *ud) {
  aigc_request *r = (aigc_request *)ud;
  size_t len = size * nitems;
  int rc;
  /* Header bytes are bytes: a stream's idle limit counts from the last
     one (libcurl hands us whole lines, the finest grain it offers). */
  if (r->idle_deadline > 0)
    r->idle_deadline = aigc_now() + r->timeout;
  rc = aigc_headers_line(&r->hdrs, buf, len, &r->status);
  if (rc == AIGC_HEADERS_OK) {
    if (len <= 2 && announced_too_big(r)) {
      r->abort_reason = AIGC_ABORT_LIMIT;
      return 0;
    }
    if (len <= 2 && r->status >= 200 && (r->body.len >= H2_EARLY_MIN_BODY || r->xb.mime != NULL))
      watch_h2_early_answer(r);   /* (the blank line ending a final answer's headers) */
    return len;
  }
  r->abort_reason = rc == AIGC_HEADERS_TOOBIG ? AIGC_ABORT_HEADERS : AIGC_ABORT_NOMEM;
  return 0;
}

/*
** Appends one event to the queue: [u32 type_len][u32 data_len][type][data].
** Once per stream chunk, so the common case stays inline: the capacity
** checked here (aigc_buf_reserve only to grow) and no copy of an empty
** type (a chat chunk has none). A queue of n bytes has n + 1 allocated
** (aigc_buf's NUL), so the sum below cannot wrap: each part is < 2^32.
*/
static int queue_event (aigc_request *r, const char *type, size_t tlen,
                        const char *data, size_t dlen) {
  uint32_t lens[2];
  size_t need;
  char *p;
  if (tlen > UINT32_MAX || dlen > UINT32_MAX)
    return -1;
  lens[0] = (uint32_t)tlen;
  lens[1] = (uint32_t)dlen;
  need = sizeof lens + tlen + dlen;
  if (r->events.cap - r->events.len <= need && aigc_buf_reserve(&r->events, need) != 0)
    return -1;
  p = r->events.data + r->events.len;
  memcpy(p, lens, sizeof lens);
  p += sizeof lens;
  if (tlen > 0) {
    memcpy(p, type, tlen);
    p += tlen;
  }
  memcpy(p, data, dlen);
  p[dlen] = '\0';
  r->events.len += need;
  return 0;
}

/* Whether an SSE event name is one of the Responses API's last events. */
static int is_final_event (const char *type, size_t len) {
  static const char *const names[] = { "response.completed", "response.incomplete", "response.failed" };
  size_t i;
  for (i = 0; i < sizeof names / sizeof names[0]; i++)
    if (len == strlen(names[i]) && memcmp(type, names[i], len) == 0)
      return 1;
  return 0;
}

/* An event of data and no name, not [DONE] (every chunk of a chat
   stream): queued with nothing else to decide. Out of line from
   on_sse_event's other cases, whose calls made it save six registers per
   chunk. */
static int queue_plain_event (aigc_request *r, const char *data, size_t dlen) {
  uint32_t lens[2];
  size_t need = sizeof lens + dlen;
  char *p;
  if (dlen > UINT32_MAX
      || (r->events.cap - r->events.len <= need && aigc_buf_reserve(&r->events, need) != 0)) {
    r->abort_reason = AIGC_ABORT_NOMEM;
    return 1;
  }
  lens[0] = 0;
  lens[1] = (uint32_t)dlen;
  p = r->events.data + r->events.len;
  memcpy(p, lens, sizeof lens);
  memcpy(p + sizeof lens, data, dlen);
  p[sizeof lens + dlen] = '\0';
  r->events.len += need;
  return 0;
}

static int on_other_event (aigc_request *r, const aigc_sse_event *ev);

/* Whether the event's data is the end marker, "[DONE]", blanks after it
   too: "data: [DONE] " from some servers (mistralai/mistral-vibe#770),
   which the SDKs end on (they test that the data starts with [DONE]). */
static int is_done (const aigc_sse_event *ev) {
  size_t n = ev->data_len;
  if (!ev->has_data || n < 6 || memcmp(ev->data, "[DONE]", 6) != 0)
    return 0;
  while (n > 6 && (ev->data[n - 1] == ' ' || ev->data[n - 1] == '\t'))
    n--;
  return n == 6;
}

/* Whether the event's data is empty or blanks only: a keep-alive of a
   proxy's or a server's ("data: " then the blank line: openai/openai-go#651),
   which the SSE standard does not dispatch as an event. */
static int blank_data (const aigc_sse_event *ev) {
  size_t i;
  for (i = 0; i < ev->data_len; i++)
    if (ev->data[i] != ' ' && ev->data[i] != '\t')
      return 0;
  return 1;
}

/* The Responses API's end (it has no [DONE]): as after [DONE], the server
   has AIGC_DONE_GRACE to end the response, and nothing after it counts (a
   late delta or error event would change or fail the response the SDKs
   take from this event). */
static void responses_end (aigc_request *r) {
  r->saw_done = 1;
  r->idle_deadline = 0;
  r->done_deadline = aigc_now() + AIGC_DONE_GRACE;
  aigc_transfer_timers_changed(r);   /* (an earlier timer: the roster's floor must know) */
}

void aigc_transfer_grace (aigc_request *r) {
  r->idle_deadline = 0;
  r->done_deadline = aigc_now() + AIGC_DONE_GRACE;
  aigc_transfer_timers_changed(r);
}

/* Whether s[0..n) holds the string lit. */
static int has_text (const char *s, size_t n, const char *lit) {
  size_t len = strlen(lit), i;
  for (i = 0; i + len <= n; i++)
    if (s[i] == lit[0] && memcmp(s + i, lit, len) == 0)
      return 1;
  return 0;
}

/*
** An unnamed event's data that is a Responses final event: its "type" is
** one of them (parsed only when one's name is in the data, which every
** other event's is not but in a rare text: one parse more then).
*/
static int is_final_data (const char *data, size_t dlen) {
  static const char *const names[] = { "\"response.completed\"", "\"response.incomplete\"",
                                       "\"response.failed\"" };
  aigc_json_arena arena;
  aigc_json_value v;
  aigc_json_error err;
  const aigc_json_value *t;
  size_t i;
  int final = 0;
  for (i = 0; i < sizeof names / sizeof names[0]; i++)
    if (has_text(data, dlen, names[i]))
      break;
  if (i == sizeof names / sizeof names[0])
    return 0;
  aigc_json_arena_init(&arena);
  if (aigc_json_parse(&arena, data, dlen, 0, &v, &err) == AIGC_JSON_OK
      && (t = aigc_json_get(&v, "type")) != NULL && t->type == AIGC_JSON_STRING)
    final = is_final_event(t->u.s, t->len);
  aigc_json_arena_free(&arena);
  return final;
}

static int on_sse_event (void *ud, const aigc_sse_event *ev) {
  aigc_request *r = (aigc_request *)ud;
  r->sse_events = 1;
  if (r->saw_done)
    return 0;   /* nothing after [DONE] counts */
  if (ev->type_len == 0 && ev->has_data && ev->data_len > 0 && ev->data[0] == '{') {
    /* a chunk (anything else: below); a Responses event named by its data
       alone may be the end */
    if (r->kind == AIGC_KIND_RESPONSES && is_final_data(ev->data, ev->data_len))
      responses_end(r);
    return queue_plain_event(r, ev->data, ev->data_len);
  }
  return on_other_event(r, ev);
}

/* on_sse_event's other cases: [DONE], named events, no data. */
static int on_other_event (aigc_request *r, const aigc_sse_event *ev) {
  if (is_done(ev) || (ev->type_len == 4 && memcmp(ev->type, "done", 4) == 0)) {
    /* The end. The server should close the response right after; if it
       does not within a grace period, the engine ends it for us. */
    r->saw_done = 1;
    r->idle_deadline = 0;
    r->done_deadline = aigc_now() + AIGC_DONE_GRACE;
    aigc_transfer_timers_changed(r);
    return 0;
  }
  if ((!ev->has_data || blank_data(ev)) && !(ev->type_len == 5 && memcmp(ev->type, "error", 5) == 0))
    return 0;   /* an event without data (or blank data) carries nothing */
  if (r->kind == AIGC_KIND_RESPONSES && is_final_event(ev->type, ev->type_len))
    responses_end(r);
  if (queue_event(r, ev->type, ev->type_len, ev->data, ev->data_len) != 0) {
    r->abort_reason = AIGC_ABORT_NOMEM;
    return 1;
  }
  return 0;
}

#define BOM "\xEF\xBB\xBF"   /* (a UTF-8 byte order mark, dropped before JSON: response.c) */

/* The first byte of a body's first bytes (after those `held` from earlier
   reads: blanks, a BOM or its start) past blanks, a BOM and blanks (0:
   nothing else yet; -1: the start of a BOM only, so far: a mark split
   across reads is told by the next ones). A BOM after blanks ("\n\n" then
   the mark then JSON, in one read) was a byte no JSON starts with: SSE. */
static int first_byte (const aigc_buf *held, const char *first, size_t n) {
  size_t b = 0, i;   /* b: the bytes of a BOM seen, held's last ones */
  if (held->len > 0 && (unsigned char)held->data[held->len - 1] == 0xEF)
    b = 1;
  else if (held->len > 1 && memcmp(held->data + held->len - 2, BOM, 2) == 0)
    b = 2;
  for (i = 0; i < n; i++) {
    char c = first[i];
    if (b == 1 || b == 2) {
      if (c != BOM[b])
        return (unsigned char)BOM[0];   /* (no mark after all: a byte no JSON starts with) */
      b++;
    }
    else if (b == 0 && c == BOM[0])
      b = 1;
    else if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
      return (unsigned char)c;
  }
  return b == 1 || b == 2 ? -1 : 0;
}

/*
** Decides, at the first body byte, how to read this response: as SSE when
** a stream was asked for, the status is 2xx and the server says
** text/event-stream (or says nothing and the body does not start like
** JSON); otherwise as one body (errors, or a server that ignored `stream`).
** A body that starts as JSON is read as JSON whatever its label; a chat or
** completion not asked to stream is read as SSE when a 2xx says
** text/event-stream and its body starts as no JSON can.
*/
static void decide_mode (aigc_request *r, const char *first, size_t n) {
  const char *ct;
  int c;
  r->mode_decided = 1;
  r->sse = 0;
  if ((r->xb.sink == AIGC_SINK_FILE || r->xb.sink == AIGC_SINK_CHUNKS) && r->xb.sink_audio
      && r->status >= 200 && r->status < 300)
    r->xb.sink_diverted = aigc_body_not_audio_type(aigc_headers_find(&r->hdrs, "content-type", NULL));
  if (r->status < 200 || r->status >= 300)
    return;
  ct = aigc_headers_find(&r->hdrs, "content-type", NULL);
  c = first_byte(&r->resp, first, n);
  if (!r->stream) {
    /* (servers whose "stream" defaults to true, or that ignore it:
       mini-sglang; their chunks, accumulated, are the reply. A body that
       starts as JSON stays JSON. Blanks only so far decide nothing: the
       next bytes do, and the blanks mean nothing either way.) */
    r->sse = (r->kind == AIGC_KIND_CHAT || r->kind == AIGC_KIND_COMPLETION) && ct != NULL
             && aigc_body_type_has(ct, "event-stream") && c != '{' && c != '[';
    if (r->sse && c <= 0)
      r->sse = r->mode_decided = 0;
    return;
  }
  if (aigc_body_type_has(ct, "event-stream"))
    r->sse = c != '{' && c != '[';   /* (JSON so labelled, a proxy's error: no event starts so) */
  else if (aigc_body_type_has(ct, "json"))
    r->sse = 0;
  else if (r->xb.events_text && aigc_body_not_audio_type(ct))   /* text/...: the body, whole */
    r->xb.sink_diverted = 1;
  else if (r->xb.events_audio && aigc_body_is_audio_type(ct))   /* the audio: to fn as chunks */
    r->xb.sink_diverted = r->xb.events_raw = 1;
  else
    r->sse = c != '{' && c != '[';
  /* (a BOM's start only, or blanks only -- keep-alives before a JSON error
     or reply: kept in r->resp until the next bytes tell) */
  if (r->sse && c <= 0)
    r->sse = r->mode_decided = 0;
}

/* SSE bytes: parsed into events, queued for the loop. */
static size_t write_sse (aigc_request *r, char *ptr, size_t n) {
  int rc;
  if (r->idle_deadline > 0)
    r->idle_deadline = aigc_now() + r->timeout;
  if (!r->sse_events && r->head_len < sizeof r->head) {   /* (until an event comes) */
    size_t k = sizeof r->head - r->head_len;
    memcpy(r->head + r->head_len, ptr, k < n ? k : n);
    r->head_len += k < n ? k : n;
  }
  rc = aigc_sse_feed(&r->sse_parser, ptr, n, on_sse_event, r);
  if (rc == AIGC_SSE_TOOBIG) {
    r->abort_reason = AIGC_ABORT_LIMIT;
    return 0;
  }
  if (rc == AIGC_SSE_NOMEM || (rc == AIGC_SSE_STOPPED && r->abort_reason != AIGC_ABORT_NONE)) {
    if (r->abort_reason == AIGC_ABORT_NONE)
      r->abort_reason = AIGC_ABORT_NOMEM;
    return 0;
  }
  if (r->roster != NULL && r->events.len > 0)
    aigc_roster_ready(r->roster, &r->entry);
  return n;
}

/* A 2xx reply that goes to a file, or to a callback (queued as "bytes"
   events the loop delivers): never kept whole in memory. */
static size_t write_sink (aigc_request *r, char *ptr, size_t n) {
  if (r->xb.sink == AIGC_SINK_FILE)
  {
    if (aigc_body_write_file(&r->xb, ptr, n) == 0)
      return n;
    r->abort_reason = AIGC_ABORT_SINK;
    return 0;
  }
  if (queue_event(r, "bytes", 5, ptr, n) != 0) {
    r->abort_reason = AIGC_ABORT_NOMEM;
    return 0;
  }
  if (r->roster != NULL)
    aigc_roster_ready(r->roster, &r->entry);
  return n;
}

/*
** max_bytes_per_step: once a turn has taken in its bytes, every transfer
** that has more is paused (libcurl keeps what it read, and reads no more
** for it) and held until a later turn resumes it (aigc_transfer_new_turn),
** so that one step never reads and parses more than about the budget (plus
** the one write that crossed it) whatever the servers send. The server is
** not idle meanwhile: its idle timer starts again.
*/
static int hold_for_next_turn (aigc_request *r, size_t n) {
  aigc_roster *ro = r->roster;
  if (ro == NULL || ro->config.max_bytes_per_step == 0)
    return 0;
  if (ro->bytes_this_turn < ro->config.max_bytes_per_step) {
    ro->bytes_this_turn += n;
    return 0;
  }
  r->held_since = aigc_now();
  if (r->idle_deadline > 0)
    r->idle_deadline = r->held_since + r->timeout;
  aigc_roster_hold(ro, &r->entry);
  return 1;
}

static size_t on_write (char *ptr, size_t size, size_t nmemb, void *ud) {
  aigc_request *r = (aigc_request *)ud;
  size_t n = size * nmemb;
  if (hold_for_next_turn(r, n))
    return CURL_WRITEFUNC_PAUSE;
  if (!r->mode_decided) {
    decide_mode(r, ptr, n);
    /* (a BOM's start or blanks held from earlier reads, and events after all: the parser gets them first) */
    if (r->sse && r->resp.len > 0) {
      if (write_sse(r, r->resp.data, r->resp.len) == 0)
        return 0;
      aigc_buf_clear(&r->resp);
    }
  }
  r->received += n;
  if (r->received > r->max_bytes) {
    r->abort_reason = AIGC_ABORT_LIMIT;
    return 0;
  }
  if (r->sse)
    return write_sse(r, ptr, n);
  if (r->idle_deadline > 0)
    r->idle_deadline = aigc_now() + r->timeout;
  if ((((r->xb.sink == AIGC_SINK_FILE || r->xb.sink == AIGC_SINK_CHUNKS) && !r->xb.sink_diverted)
       || r->xb.events_raw) && r->status >= 200 && r->status < 300)
    return write_sink(r, ptr, n);
  if (aigc_buf_append(&r->resp, ptr, n) != 0) {
    r->abort_reason = AIGC_ABORT_NOMEM;
    return 0;
  }
  return n;
}

/*
** A file upload's or binary download's sent bytes (libcurl's progress
** callback, set for those only): bytes going out are movement too, and the
** idle limit counts from the last of them (received ones: on_write,
** on_header). (libcurl's own low-speed check, used before, averages bytes
** both ways over its last 5 s or so: the request's own body, sent at the
** start, kept a silent server's download alive some 6 s past `timeout`.)
*/
static int on_progress (void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                        curl_off_t ulnow) {
  aigc_request *r = (aigc_request *)ud;
  (void)dltotal; (void)dlnow; (void)ultotal;
  if (ulnow != r->sent) {   /* (smaller too: libcurl sent the request again) */
    r->sent = ulnow;
    if (r->idle_deadline > 0)
      r->idle_deadline = aigc_now() + r->timeout;
  }
  return 0;
}

/* }====================================================== */


/*
** {======================================================
** The easy handle
** =======================================================
*/

static char *dup_url (const aigc_config *c, const char *path, const char *query) {
  size_t blen = strlen(c->base_url), plen = strlen(path), qlen = query ? strlen(query) : 0;
  char *url = (char *)malloc(blen + plen + qlen + 3);
  char *p = url;
  if (url == NULL)
    return NULL;
  memcpy(p, c->base_url, blen);
  p += blen;
  if (plen > 0 && path[0] != '/')
    *p++ = '/';
  memcpy(p, path, plen);
  p += plen;
  if (qlen > 0) {
    *p++ = strchr(path, '?') ? '&' : '?';
    memcpy(p, query, qlen);
    p += qlen;
  }
  *p = '\0';
  return url;
}

#define SET(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(h, opt, val); } while (0)

/* The options every request of the client shares: set once per handle. */
static int setup_fresh (CURL *h, const aigc_roster *ro) {
  const aigc_config *c = &ro->config;
  CURLcode rc = CURLE_OK;
  SET(CURLOPT_WRITEFUNCTION, on_write);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_FOLLOWLOCATION, 0L);   /* never replay a POST, never leak a key */
  SET(CURLOPT_TCP_KEEPALIVE, 1L);
  /* A compressed reply inflates inside libcurl, past what on_write can
     hold back: a client with max_bytes_per_step asks for none (libcurl then
     inflates nothing, and a byte counted is a byte read). */
  SET(CURLOPT_ACCEPT_ENCODING, c->max_bytes_per_step > 0 ? NULL : "");
  SET(CURLOPT_OPENSOCKETFUNCTION, ro->open_socket);
  SET(CURLOPT_OPENSOCKETDATA, ro->socket_data);
  SET(CURLOPT_CLOSESOCKETFUNCTION, ro->close_socket);
  SET(CURLOPT_CLOSESOCKETDATA, ro->socket_data);
  if (rc != CURLE_OK)
    return -1;
#if LIBCURL_VERSION_NUM >= 0x075700   /* 7.87.0 */
  /* Removing a transfer whose host name is still being resolved (cancel,
     close, a timeout) otherwise joins libcurl's resolver thread: the frame
     (req:cancel(), client:close(), lua_close) waited for getaddrinfo, as
     long as the DNS takes to answer or give up. The thread is left to end
     alone (it frees what it holds). */
  curl_easy_setopt(h, CURLOPT_QUICK_EXIT, 1L);
#endif
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
  /* (the scheme in any case, as libcurl takes it: "HTTPS://" too) */
  if (strncasecmp(c->base_url, "https:", 6) == 0)
    curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);   /* prefer one HTTP/2 connection */
  if (c->insecure) {   /* the server's, and an https:// proxy's (its own options) */
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
#if LIBCURL_VERSION_NUM >= 0x073400   /* 7.52.0 */
    curl_easy_setopt(h, CURLOPT_PROXY_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_PROXY_SSL_VERIFYHOST, 0L);
#endif
  }
  if (c->ca_file != NULL)
    SET(CURLOPT_CAINFO, c->ca_file);
  if (c->ca_path != NULL)
    SET(CURLOPT_CAPATH, c->ca_path);
  if (c->proxy != NULL)
    SET(CURLOPT_PROXY, c->proxy);
  return rc == CURLE_OK ? 0 : -1;
}

/* Whether a non-streamed call moves a file (an upload, a binary download):
   no total timeout, an idle limit instead, as a stream's (setup_attempt). */
static int moves_file (const aigc_request *r) {
  return !r->stream && (r->xb.mime != NULL || r->xb.sink == AIGC_SINK_BYTES
                        || r->xb.sink == AIGC_SINK_FILE || r->xb.sink == AIGC_SINK_CHUNKS);
}

/*
** Whether the attempt's total timeout is aigc's own (attempt_deadline)
** rather than libcurl's: a non-streamed call. libcurl's would count the
** turns its reply waits, paused by max_bytes_per_step, for the game's next
** steps, and checks itself before it reads: a fast server's reply, there
** in the socket, timed out in a loop that steps slowly (a loading screen).
** aigc's is checked after the loop has read. (Streams and files: no total.)
*/
static int own_timeout (const aigc_request *r, const aigc_roster *ro) {
  return !r->stream && !moves_file(r) && ro != NULL;
}

/*
** Sets the options of the transfer. A handle fresh from curl_easy_init gets
** every option; one that served an earlier request of this engine (see
** aigc_roster_take_easy) already has those that depend on the engine only,
** so it gets just the ones that can differ between two requests, every
** one of them, never left to the default (setting the rest again cost
** ~2% of a request: libcurl copies and parses the strings each time).
*/
static int setup_easy (aigc_request *r, const aigc_roster *ro, int fresh) {
  const aigc_config *c = &ro->config;
  CURL *h = r->easy;
  aigc_easy_memo *m = &r->easy_memo;
  CURLcode rc = CURLE_OK;
  const struct curl_slist *headers = r->headers ? r->headers
      : (r->stream && c->stream_headers) ? c->stream_headers : c->headers;
  int method = r->kind == AIGC_KIND_DELETE || r->xb.method == AIGC_METHOD_DELETE ? 2 : 1;
  long connect_ms = (long)ceil(r->connect_timeout * 1000.0);
  /* Non-streamed calls have a total deadline; a stream only an idle one
     (the request's own timer), never a total. So has a file upload or a
     binary download, both ways (no byte received or sent for `timeout`;
     the sent ones told by libcurl's progress callback): a 1 GB file at
     1 MB/s outlasts 600 s while it moves (the SDKs bound each read and
     write, not the whole). */
  int files = moves_file(r);
  long timeout_ms = r->stream || files || own_timeout(r, ro) ? 0L : (long)ceil(r->timeout * 1000.0);
  SET(CURLOPT_ERRORBUFFER, r->errbuf);
  SET(CURLOPT_PRIVATE, (void *)r);
  SET(CURLOPT_WRITEDATA, (void *)r);
  SET(CURLOPT_HEADERDATA, (void *)r);
  SET(CURLOPT_XFERINFODATA, (void *)r);
  /* The rest only when it differs from what this handle was last given
     (its memo): the same client sends the same URL, headers and limits. */
  if (m->url == NULL || strcmp(m->url, r->url) != 0) {
    free(m->url);
    SET(CURLOPT_URL, r->url);
    m->url = strdup(r->url);   /* (NULL: set again next time) */
  }
  if (!m->have_headers || m->headers != headers) {
    SET(CURLOPT_HTTPHEADER, headers);
    m->headers = headers;
    m->have_headers = 1;
  }
  /* Every request has its method (a reused handle may have posted or
     deleted). */
  if (m->method != method) {
    SET(CURLOPT_CUSTOMREQUEST, method == 2 ? "DELETE" : NULL);
    m->method = method;
  }
  if (aigc_request_bodiless(r)) {
    SET(CURLOPT_POSTFIELDS, NULL);
    SET(CURLOPT_HTTPGET, 1L);
  }
  else if (r->xb.mime != NULL)
    SET(CURLOPT_MIMEPOST, r->xb.mime);   /* (freeing the form unbinds it from the handle) */
  else {
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body.len);
    SET(CURLOPT_POSTFIELDS, r->body.data ? r->body.data : "");
  }
  if (m->connect_ms != connect_ms) {
    SET(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    m->connect_ms = connect_ms;
  }
  if (m->timeout_ms != timeout_ms) {
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    m->timeout_ms = timeout_ms;
  }
  if (m->progress != files) {
    SET(CURLOPT_XFERINFOFUNCTION, files ? on_progress : NULL);
    SET(CURLOPT_NOPROGRESS, files ? 0L : 1L);
    m->progress = files;
  }
#undef SET
  if (rc != CURLE_OK) {
    aigc_easy_memo_clear(m);   /* (what the handle holds is not known) */
    return -1;
  }
  return fresh ? setup_fresh(h, ro) : 0;
}

int aigc_transfer_prepare (aigc_request *r, const char *path, const char *query) {
  aigc_roster *ro = r->roster;
  int fresh;
  if (r->xb.absolute)   /* a whole URL (form.h): nothing of the client's added */
    r->url = strdup(path);
  else
    r->url = dup_url(&ro->config, path, query != NULL ? query : ro->config.query);
  /* (room for its timer, reserved before it is linked: timers.h) */
  if (r->url == NULL || aigc_timers_reserve(&ro->timers, ro->nall + 1) != 0)
    return AIGC_PREPARE_NOMEM;
  r->easy = aigc_roster_take_easy(ro, &fresh, &r->easy_memo);
  if (r->easy == NULL)
    return AIGC_PREPARE_NOHANDLE;
  if (setup_easy(r, ro, fresh) != 0)
    return AIGC_PREPARE_OPTIONS;
  /* A reader's bytes are gone once given: its upload over http:// goes on
     a new connection. On a kept-alive one that the server closed as the
     request went (its idle timeout), libcurl sends the request again on a
     new one and cannot: the call failed ("Cannot rewind mime/post data").
     (Not over https://, where HTTP/2 shares a connection between requests
     and a server says GOAWAY before it closes one: the narrower race of a
     GOAWAY crossing the request is left there.) */
  if (r->xb.has_reader && strncasecmp(r->url, "http:", 5) == 0) {
    r->fresh_only = 1;
    curl_easy_setopt(r->easy, CURLOPT_FRESH_CONNECT, 1L);
  }
  return AIGC_PREPARE_OK;
}

/* A handle that outlives its engine must not call back into it. */
static void forget_engine (CURL *easy) {
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, NULL);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, NULL);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, NULL);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, NULL);
}

const char *aigc_transfer_path (const aigc_request *r, char *buf, size_t size) {
  const char *p = r->url ? strstr(r->url, "://") : NULL;
  size_t n;
  p = p ? strchr(p + 3, '/') : NULL;
  if (p == NULL)
    p = "/";
  n = strcspn(p, "?#");   /* a query may carry credentials some providers put there */
  if (n < size) {
    memcpy(buf, p, n);
    buf[n] = '\0';
    return buf;
  }
  for (n = size - 4; n > 0 && ((unsigned char)p[n] & 0xC0) == 0x80; n--)
    ;   /* (at a character: p[n] is no continuation byte) */
  n = aigc_secrets_cut(aigc_log_secrets(r), p, n);
  memcpy(buf, p, n);
  memcpy(buf + n, "\xE2\x80\xA6", 4);   /* … */
  return buf;
}

/* }====================================================== */


/*
** {======================================================
** Attempts, and the engine's lists
** =======================================================
*/

void aigc_transfer_link (aigc_request *r) {
  aigc_roster_link(r->roster, &r->entry);
  r->state = AIGC_QUEUED;
  r->started = aigc_now();
  if (r->deadline > 0)
    r->deadline_at = r->started + r->deadline;
  aigc_transfer_timers_changed(r);
}

/* Resets what one attempt leaves behind, before (re)adding the handle. */
static int setup_attempt (aigc_request *r) {
  int files_ok;
  r->status = 0;
  aigc_buf_clear(&r->resp);
  if (r->roster != NULL)   /* (the last request's store, kept) */
    aigc_roster_take_buf(r->roster, &r->hdrs.buf);
  aigc_headers_start(&r->hdrs);
  if (r->stream && r->roster != NULL) {   /* start as large as the last stream grew */
    aigc_roster_take_buf(r->roster, &r->events);
    aigc_roster_take_buf(r->roster, &r->draining);
  }
  aigc_buf_clear(&r->events);
  aigc_buf_clear(&r->draining);
  r->draining_read = 0;
  r->received = 0;
  r->transfer_done = 0;
  r->curl_code = CURLE_OK;
  r->errbuf[0] = '\0';
  r->abort_reason = AIGC_ABORT_NONE;
  r->mode_decided = 0;
  r->sse = 0;
  r->saw_done = 0;
  r->eof_clean = 0;
  r->sse_events = 0;
  r->head_len = 0;
  r->done_deadline = 0;
  r->h2_early_watch = 0;
  r->retry_at = 0;
  files_ok = aigc_body_attempt(&r->xb);   /* a retry writes its file again, reads its uploads again */
  aigc_sse_reset(&r->sse_parser);
  if (r->accum.chunks > 0 || r->accum.root.len > 0)
    aigc_accum_free(&r->accum);   /* (keeps its kind and limits) */
  aigc_raccum_reset(&r->raccum);
  /* A stream's timeout is an idle limit between bytes, counted from now;
     a file upload's or binary download's too, bytes either way. */
  r->idle_deadline = r->stream || moves_file(r) ? aigc_now() + r->timeout : 0;
  r->sent = 0;
  r->idle_forgiven = 0;
  r->attempt_deadline = own_timeout(r, r->roster) ? aigc_now() + r->timeout : 0;
  aigc_transfer_timers_changed(r);   /* (and the deadline counts again: transfer_done = 0) */
  return files_ok;
}

/* The attempt is over (libcurl, a timer): the loop turns it into an outcome. */
static void attempt_over (aigc_request *r, CURLcode code, aigc_abort why) {
  r->transfer_done = 1;
  r->attempt_deadline = 0;
  r->curl_code = code;
  if (why != AIGC_ABORT_NONE)
    r->abort_reason = why;
  if (r->roster != NULL)
    aigc_roster_ready(r->roster, &r->entry);
}

static void begin_attempt (aigc_request *r) {
  CURLMcode mc;
  if (setup_attempt(r) != 0) {   /* an upload's file is gone: nothing is sent */
    attempt_over(r, CURLE_READ_ERROR, AIGC_ABORT_UPLOAD);
    return;
  }
  mc = curl_multi_add_handle(r->roster->multi, r->easy);
  if (mc != CURLM_OK) {
    snprintf(r->errbuf, sizeof r->errbuf, "%s", curl_multi_strerror(mc));
    attempt_over(r, CURLE_FAILED_INIT, AIGC_ABORT_NONE);
    return;
  }
  r->in_multi = 1;
}

void aigc_transfer_start (aigc_request *r) {
  r->state = AIGC_RUNNING;
  aigc_roster_take_slot(r->roster, &r->entry);
  begin_attempt(r);
  aigc_transfer_timers_changed(r);   /* (begin_attempt may end the attempt at once) */
}

void aigc_transfer_queue (aigc_request *r) {
  r->state = AIGC_QUEUED;
  aigc_roster_enqueue(r->roster, &r->entry);
}

/*
** An HTTP/2 server may send its whole response before it has read the
** request body, then end the stream with RST_STREAM(NO_ERROR); the client
** must keep that response (RFC 9113 8.1). nginx does so for every request
** it answers without reading the body (`return`, an error page, a 413, a
** limit_req 429...). libcurl before 8.3.0 (7.88.1: http2.c cf_h2_send)
** then fails the transfer when it goes on sending the body: "stream N
** closed", CURLE_HTTP2_STREAM with an empty errbuf (an infof: its real
** stream errors failf a message), the connection kept. When the close had
** been seen by another transfer on the connection, the response it had
** received is dropped with it, whole or all but its status and headers.
** Each is the server's answer, not a broken stream:
** - the response reached us (status, and as many bytes as its
**   Content-Length says): it is the attempt's outcome;
** - none of the response's body reached us (nothing at all, or only its
**   status and headers: under load about 1 run in 50 of the spec below;
**   libcurl dropped the DATA with the stream): the server answered before
**   it had the body, so it did not act on it; the request is sent again
**   once, at once, on the same connection (as libcurl does for a stream
**   the server refused), unless a reader's bytes are gone (body.h).
** spec/security_spec.lua "HTTP/2".
*/
static int h2_early_answer (const aigc_request *r, CURLcode code) {
  return code == CURLE_HTTP2_STREAM && r->errbuf[0] == '\0' && r->easy != NULL;
}

static int h2_answered_early (const aigc_request *r, CURLcode code) {
  long version = 0, status = 0;
  curl_off_t got = -1, announced = -1;
  if (!h2_early_answer(r, code))
    return 0;
  curl_easy_getinfo(r->easy, CURLINFO_HTTP_VERSION, &version);
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(r->easy, CURLINFO_SIZE_DOWNLOAD_T, &got);
  curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
  return version == CURL_HTTP_VERSION_2_0 && status >= 200 && (announced < 0 || got == announced);
}

/* Whether the request may be sent again at once, uncounted: once per
   call, nothing of its body received nor delivered, no reader's bytes gone. */
static int h2_may_resend (const aigc_request *r) {
  return !r->h2_resent && !r->delivered && r->received == 0
         && r->xb.fed == 0 && r->state == AIGC_RUNNING && r->roster != NULL
         && !r->roster->closing && !r->roster->closed;
}

/* (Called when h2_answered_early is not: no whole answer. Its status line
   may have come without its body, which libcurl dropped.) */
static int h2_early_answer_lost (const aigc_request *r, CURLcode code) {
  return h2_early_answer(r, code) && h2_may_resend(r);
}

/*
** After a GOAWAY, nghttp2 closes the streams the server never processed
** (above its last stream id) and libcurl sends them again on a new
** connection ("Connection died, retrying a fresh connect"), as RFC 9113
** 6.8 allows and httpx does -- except, in libcurl 7.88, a transfer that
** reads the connection once no stream is left on it: a bare CURLE_HTTP2
** ("Error in the HTTP2 framing layer", errbuf empty, its real errors failf
** a message) with not one header byte received. About 1 in 2 runs of 4
** requests in flight lost one so (a "connect" error; with max_retries 0 the
** call failed). It is sent again once, at once, like libcurl's own resends.
** spec/h2_hostile_spec.lua "GOAWAY".
*/
static int h2_goaway_lost (const aigc_request *r, CURLcode code) {
  return code == CURLE_HTTP2 && r->errbuf[0] == '\0' && r->easy != NULL && r->hdrs.wire == 0
         && h2_may_resend(r);
}

/*
** At the end of a stream's body, its last event when no blank line ended
** it (sse.h aigc_sse_finish): a "data: [DONE]" (or "event: done") there
** is the end the server meant, as the SDKs take it (they stop at [DONE],
** and do not ask for one). Only the end marker counts: any other event
** held unterminated may be the start of one the connection cut, and the
** stream stays incomplete. The Responses API has no end marker: its last
** event (response.completed...) is the end, and is taken when its data is
** whole JSON, which a cut inside it cannot be (a cut one leaves the stream
** incomplete, as before).
*/
static int on_final_event (void *ud, const aigc_sse_event *ev) {
  aigc_request *r = (aigc_request *)ud;
  r->sse_events = 1;   /* (an event stream, if a short one) */
  if (is_done(ev) || (ev->type_len == 4 && memcmp(ev->type, "done", 4) == 0))
    r->saw_done = 1;
  else if (r->kind == AIGC_KIND_RESPONSES && ev->has_data) {
    aigc_json_arena arena;
    aigc_json_value v;
    aigc_json_error err;
    int whole;
    aigc_json_arena_init(&arena);
    whole = aigc_json_parse(&arena, ev->data, ev->data_len, 0, &v, &err) != AIGC_JSON_ESYNTAX;
    aigc_json_arena_free(&arena);
    if (whole && queue_event(r, ev->type, ev->type_len, ev->data, ev->data_len) != 0) {
      r->abort_reason = AIGC_ABORT_NOMEM;
      return 1;
    }
  }
  return 0;
}

void aigc_transfer_done (aigc_request *r, CURLcode code) {
  r->in_multi = 0;   /* libcurl took it out */
  if (r->roster != NULL)
    aigc_roster_unhold(r->roster, &r->entry);
  if (code != CURLE_OK && r->xb.upload_bad != NULL) {   /* a file changed while it was sent */
    attempt_over(r, code, AIGC_ABORT_UPLOAD);
    return;
  }
  if (h2_answered_early(r, code))
    code = CURLE_OK;
  else if (h2_early_answer_lost(r, code) || h2_goaway_lost(r, code)) {
    r->h2_resent = 1;
    begin_attempt(r);   /* (plain C: no Lua runs, the loop reads on) */
    aigc_transfer_timers_changed(r);
    return;
  }
  if (code == CURLE_OK && r->sse && !r->saw_done) {
    /* (whether the body ended between events, not inside one: Hugging
       Face TGI before 2.2 sends no [DONE], response.c) */
    r->eof_clean = !aigc_sse_pending(&r->sse_parser);
    aigc_sse_finish(&r->sse_parser, on_final_event, r);   /* (plain C: no Lua runs) */
  }
  attempt_over(r, code, AIGC_ABORT_NONE);
}

/* The attempt is over: its HTTP status as libcurl saw it. */
void aigc_transfer_take_status (aigc_request *r) {
  long status = 0;
  /* (An upload that failed before it was sent never ran on the handle: it
     still holds the status of the request it served before.) */
  if (r->easy != NULL && r->abort_reason != AIGC_ABORT_UPLOAD)
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
  if (status > 0)
    r->status = status;
}

/* Out of libcurl (a timer ended the attempt, a cancel, the end). */
static void leave_multi (aigc_request *r) {
  if (r->in_multi) {
    curl_multi_remove_handle(r->roster->multi, r->easy);
    r->in_multi = 0;
  }
  if (r->roster != NULL)
    aigc_roster_unhold(r->roster, &r->entry);   /* (what libcurl kept is freed) */
}

/*
** The whole call's deadline passed: the transfer ends here (whatever it
** was doing: queued, connecting, between retries, streaming) and the
** loop turns it into a "timeout" error.
*/
static void deadline_passed (aigc_request *r) {
  if (r->entry.in_queue) {
    aigc_roster_dequeue(r->roster, &r->entry);
    r->state = AIGC_RUNNING;   /* without a slot: it never had one */
  }
  leave_multi(r);
  r->retry_at = 0;
  r->idle_deadline = 0;
  r->done_deadline = 0;
  attempt_over(r, CURLE_OPERATION_TIMEDOUT, AIGC_ABORT_DEADLINE);
}

/*
** The attempt's limit (an idle limit, a plain call's total) passed
** while the host drove nothing: no turn of the loop for at least half the
** limit (a loading screen, a long frame). Nobody listened, and the request
** itself may only just have gone out; the limit counts again from now.
** Once an attempt: a host that always steps that seldom still learns of a
** dead server.
*/
static int host_stalled (aigc_request *r, double deadline) {
  const aigc_roster *ro = r->roster;
  if (r->idle_forgiven || deadline > ro->poll_began
      || ro->poll_began - ro->turn_ended < r->timeout / 2)
    return 0;
  r->idle_forgiven = 1;
  return 1;
}

void aigc_transfer_tick (aigc_request *r, double now) {
  if (r->deadline_at > 0 && now >= r->deadline_at && !r->transfer_done
      && (r->state == AIGC_RUNNING || r->state == AIGC_QUEUED)) {
    deadline_passed(r);
    return;
  }
  if (r->state != AIGC_RUNNING)
    return;
  if (r->retry_at > 0 && now >= r->retry_at && !r->delivering) {
    r->retry_at = 0;
    begin_attempt(r);
    return;
  }
  if (!r->in_multi)
    return;
  if (r->done_deadline > 0 && now >= r->done_deadline) {
    if (r->h2_early_watch && !h2_answer_complete(r)) {   /* not whole yet */
      r->done_deadline = now + H2_EARLY_POLL;
      return;
    }
    /* [DONE] arrived long ago, or the early answer is whole: the rest of
       the response (of the upload) does not matter. */
    leave_multi(r);
    r->done_deadline = 0;
    attempt_over(r, CURLE_OK, AIGC_ABORT_NONE);
  }
  else if (r->idle_deadline > 0 && now >= r->idle_deadline) {
    if (r->entry.in_held || host_stalled(r, r->idle_deadline)) {   /* held: bytes wait for it (max_bytes_per_step) */
      r->idle_deadline = now + r->timeout;
      return;
    }
    leave_multi(r);
    r->idle_deadline = 0;
    if (r->stream)
      attempt_over(r, CURLE_OPERATION_TIMEDOUT, AIGC_ABORT_IDLE);
    else {   /* a file: the text and outcome of libcurl's low-speed check, used before */
      snprintf(r->errbuf, sizeof r->errbuf, "Operation too slow. Less than 1 bytes/sec "
               "transferred the last %g seconds", r->timeout);
      attempt_over(r, CURLE_OPERATION_TIMEDOUT, AIGC_ABORT_NONE);
    }
  }
  else if (r->attempt_deadline > 0 && now >= r->attempt_deadline && !r->entry.in_held) {
    /* (held: the next turn resumes it and pushes the deadline back) */
    if (host_stalled(r, r->attempt_deadline)) {
      r->attempt_deadline = now + r->timeout;
      return;
    }
    leave_multi(r);
    snprintf(r->errbuf, sizeof r->errbuf, "Operation timed out after %.0f milliseconds with %zu bytes "
             "received%s", r->timeout * 1000.0, r->received, r->roster->config.max_bytes_per_step > 0
             ? " (the turns max_bytes_per_step held it not counted)" : "");
    attempt_over(r, CURLE_OPERATION_TIMEDOUT, AIGC_ABORT_NONE);
  }
}

double aigc_transfer_next_deadline (const aigc_request *r, double d) {
  if (r->deadline_at > 0 && !r->transfer_done && !aigc_terminal(r->state)
      && (d < 0 || r->deadline_at < d))
    d = r->deadline_at;
  if (r->state != AIGC_RUNNING)
    return d;
  if (r->retry_at > 0 && (d < 0 || r->retry_at < d))
    d = r->retry_at;
  if (r->idle_deadline > 0 && (d < 0 || r->idle_deadline < d))
    d = r->idle_deadline;
  if (r->attempt_deadline > 0 && !r->entry.in_held && (d < 0 || r->attempt_deadline < d))
    d = r->attempt_deadline;
  if (r->done_deadline > 0 && (d < 0 || r->done_deadline < d))
    d = r->done_deadline;
  return d;
}

int aigc_transfer_refill (aigc_request *r) {
  aigc_buf t;
  if (r->events.len == 0)
    return 0;
  t = r->draining;
  r->draining = r->events;
  r->events = t;
  aigc_buf_clear(&r->events);
  r->draining_read = 0;
  return 1;
}

int aigc_transfer_drained (const aigc_request *r) {
  return r->draining_read >= r->draining.len && r->events.len == 0;
}

void aigc_transfer_start_queued (aigc_roster *ro) {
  aigc_roster_entry *en;
  if (ro->closing || ro->closed)
    return;
  /* Plain C to the end (begin_attempt runs no Lua): no finalizer can
     unlink a request while the queues are read. */
  while ((en = aigc_roster_next_queued(ro)) != NULL) {
    aigc_request *next = aigc_request_of(en);
    aigc_roster_dequeue(ro, &next->entry);
    aigc_transfer_start(next);
  }
}

/*
** A turn begins: max_bytes_per_step counts again, and the transfers it
** held resume, the longest held first, while the turn has bytes left.
** Each takes in what libcurl kept for it at once (in curl_easy_pause) and
** is held again, at the list's tail, if that spends the turn. Plain C to
** the end (on_write runs no Lua): no finalizer can unlink a request here.
*/
void aigc_transfer_new_turn (aigc_roster *ro) {
  aigc_roster_entry *en;
  double now = ro->h_head != NULL ? aigc_now() : 0;
  ro->bytes_this_turn = 0;
  while ((en = ro->h_head) != NULL && ro->bytes_this_turn < ro->config.max_bytes_per_step) {
    aigc_request *r = aigc_request_of(en);
    CURLcode rc;
    aigc_roster_unhold(ro, en);
    if (r->attempt_deadline > 0) {   /* (the time held is the game's, not the server's) */
      r->attempt_deadline += now - r->held_since;
      aigc_transfer_timers_changed(r);   /* (counts again: a firing while held dropped it) */
    }
    if (!r->in_multi)
      continue;
    rc = curl_easy_pause(r->easy, CURLPAUSE_CONT);
    if (rc != CURLE_OK) {   /* on_write refused the bytes (a limit): the attempt is over */
      leave_multi(r);
      attempt_over(r, rc, AIGC_ABORT_NONE);
    }
  }
}

void aigc_transfer_release (aigc_request *r) {
  aigc_roster *ro = r->roster;
  if (ro == NULL)
    return;
  leave_multi(r);
  aigc_roster_dequeue(ro, &r->entry);
  aigc_roster_give_slot(ro, &r->entry);
  aigc_timers_remove(&ro->timers, &r->entry.timed);   /* (no timer is left to an end) */
  aigc_transfer_start_queued(ro);
}

void aigc_transfer_recycle (aigc_request *r) {
  if (r->easy != NULL && !r->in_multi && r->roster != NULL) {
    if (r->stale || r->fresh_only)   /* the only per-request option: not for the next */
      curl_easy_setopt(r->easy, CURLOPT_FRESH_CONNECT, 0L);
    aigc_roster_give_easy(r->roster, r->easy, &r->easy_memo);
    r->easy = NULL;
  }
}

/* }====================================================== */


/*
** {======================================================
** Memory
** =======================================================
*/

/* An ended stream's event buffer, or a header store's: to the engine's
   spares (the next stream starts with the capacity this one grew to), else
   freed. Never while delivered: free_memory waits for that (the draining
   buffer is read). */
static void keep_or_free (aigc_request *r, aigc_buf *b) {
  if (r->roster == NULL || !aigc_roster_keep_buf(r->roster, b))
    aigc_buf_free(b);
}

/*
** Frees what only a pending request needs, once it is over. Lua cannot see
** this memory, so it must not wait for the request's __gc: results are
** often dropped in bulk long after, and the heap would fragment between.
** While the request is being delivered its memory is pinned: the free
** waits for the delivery to end (request.c).
*/
void aigc_transfer_free_memory (aigc_request *r) {
  if (r->delivering) {
    r->free_deferred = 1;
    return;
  }
  if (r->memory_freed)   /* (the end freed it; the finalizer asks again) */
    return;
  r->memory_freed = 1;
  keep_or_free(r, &r->hdrs.buf);
  aigc_headers_free(&r->hdrs);   /* (what is left of it) */
  aigc_buf_free(&r->body);
  aigc_body_free(&r->xb);   /* a partial file is removed */
  free(r->url);
  r->url = NULL;
  curl_slist_free_all(r->headers);
  r->headers = NULL;
  aigc_buf_free(&r->resp);
  keep_or_free(r, &r->events);
  keep_or_free(r, &r->draining);
  r->draining_read = 0;
  aigc_sse_free(&r->sse_parser);
  aigc_sse_init(&r->sse_parser, r->max_bytes);
  aigc_accum_free(&r->accum);
  aigc_raccum_free(&r->raccum);
  aigc_roster_keep_arena(r->roster, &r->arena);
}

void aigc_transfer_detach (aigc_request *r) {
  aigc_roster *ro = r->roster;
  if (ro != NULL) {
    leave_multi(r);
    aigc_roster_unlink(ro, &r->entry);
  }
  if (r->easy != NULL)
    forget_engine(r->easy);
  r->roster = NULL;
  aigc_transfer_free_memory(r);
}

void aigc_transfer_free (aigc_request *r) {
  r->delivering = 0;   /* cannot be: it is on the stack while delivered */
  aigc_roster_set_delivering(r->roster, &r->entry, 0);
  aigc_transfer_detach(r);   /* (and its memory freed, unless the end did) */
  if (r->easy != NULL) {
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
  }
  aigc_easy_memo_clear(&r->easy_memo);
  aigc_sse_free(&r->sse_parser);
}

/* }====================================================== */
