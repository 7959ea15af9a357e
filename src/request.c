/*
** request.c — one request: an "aigc.request" userdata.
**
** Life of a request:
**   submit   checks every argument, creates the userdata (closed, with its
**            metatable) before acquiring anything, encodes the body, sets
**            up a libcurl easy handle and gives it to the engine;
**   transfer libcurl callbacks (on_header, on_write, on_sse_event) append
**            bytes, feed the SSE parser and queue events — they never call
**            Lua;
**   dispatch from the driving loop: each queued stream event is parsed,
**            merged into the accumulated completion and handed to the
**            stream callback; when the transfer is over, the response
**            becomes a result table or an error object, or a retry is
**            scheduled on the engine's timer;
**   end      on_done / on_error run, a waiting coroutine is resumed, and
**            the engine lets go of the request.
** cancel() works in every state and delivers nothing afterwards: its
** on_error (kind "canceled") and waiter run from the loop, never from
** cancel() itself. __gc cancels a request nobody can observe any more.
**
** THE RE-ENTRANCY RULE (aigc.h, docs/ARCHITECTURE.md): any Lua allocation
** may run a finalizer that cancels this request, closes its client or
** drives the loop. So aigc_request_dispatch pins the request (`delivering`:
** frees deferred, the events read from `draining`, the loop skips it), and
** after every Lua allocation the code re-checks r->state / r->engine
** before it acts; end_request drops a value made for a request that ended
** meanwhile. cancel() allocates nothing. submit reads nothing of the
** engine across an allocation and re-checks it before it links the request.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aigc.h"

static const char *const state_names[] = {
  "queued", "running", "done", "failed", "canceled"
};

aigc_request *aigc_check_request (lua_State *L, int idx) {
  return (aigc_request *)luaL_checkudata(L, idx, AIGC_REQUEST_MT);
}


/*
** {======================================================
** Response headers: "name\0value\0" pairs, names lower-cased
** =======================================================
*/

static const char *find_header (const aigc_request *r, const char *name, size_t *vlen) {
  const char *p = r->hdrs.data, *end = p + r->hdrs.len;
  if (p == NULL)
    return NULL;
  while (p < end) {
    const char *value = p + strlen(p) + 1;
    size_t len = strlen(value);
    if (strcmp(p, name) == 0) {
      if (vlen)
        *vlen = len;
      return value;
    }
    p = value + len + 1;
  }
  return NULL;
}

/* Whether the header name at p (of length nlen) appears before p in r->hdrs. */
static int seen_before (const aigc_request *r, const char *p, size_t nlen) {
  const char *q = r->hdrs.data;
  while (q < p) {
    size_t qlen = strlen(q);
    const char *value = q + qlen + 1;
    if (qlen == nlen && memcmp(q, p, nlen) == 0)
      return 1;
    q = value + strlen(value) + 1;
  }
  return 0;
}

/* Headers up to this many find repeats by a scan; beyond, by the table. */
#define FEW_HEADERS 32

/*
** Pushes a table of every response header (repeated ones joined by ", "),
** in time linear in the headers whatever a server sends (50,000 of them, or
** one name 50,000 times). Each name is made a Lua string once and the table
** is sized exactly. A typical response has a dozen headers: repeats are
** found in C (a 64-bit filter of the names, then a scan), which costs less
** than a table lookup per header; many headers look up the table instead,
** and the values of a name repeated in a long response are gathered in a
** list and joined once at the end (joining as they come would copy the
** growing value each time).
** Reads r->hdrs across allocations: r must be pinned (delivering).
*/
static void push_headers (lua_State *L, const aigc_request *r) {
  const char *p = r->hdrs.data, *end = p + r->hdrs.len;
  uint64_t seen = 0;
  int few = r->nhdrs <= FEW_HEADERS, t, lists = 0;
  if (p == NULL) {
    lua_createtable(L, 0, 0);
    return;
  }
  lua_createtable(L, 0, r->nhdrs > INT32_MAX ? INT32_MAX : (int)r->nhdrs);
  t = lua_gettop(L);
  while (p < end) {
    size_t nlen = strlen(p);
    const char *value = p + nlen + 1;
    size_t vlen = strlen(value);
    int again;
    if (few) {
      uint64_t bit = (uint64_t)1 << ((nlen * 7 + (unsigned char)p[0]
                                      + (nlen ? (unsigned char)p[nlen - 1] : 0)) & 63);
      again = (seen & bit) != 0 && seen_before(r, p, nlen);
      seen |= bit;
      lua_pushlstring(L, p, nlen);
      if (again) {
        lua_pushvalue(L, -1);
        lua_rawget(L, t);
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, value, vlen);
        lua_concat(L, 3);
      }
      else
        lua_pushlstring(L, value, vlen);
      lua_rawset(L, t);
    }
    else {
      lua_pushlstring(L, p, nlen);
      lua_pushvalue(L, -1);
      again = lua_rawget(L, t) != LUA_TNIL;
      lua_pop(L, 1);
      if (!again) {
        lua_pushlstring(L, value, vlen);
        lua_rawset(L, t);
      }
      else {
        /* lists[name] = { first value, ... } */
        if (!lists) {
          lua_newtable(L);
          lua_insert(L, t + 1);
          lists = t + 1;
        }
        lua_pushvalue(L, -1);
        if (lua_rawget(L, lists) == LUA_TNIL) {
          lua_pop(L, 1);
          lua_createtable(L, 4, 0);
          lua_pushvalue(L, -2);
          lua_rawget(L, t);
          lua_rawseti(L, -2, 1);
          lua_pushvalue(L, -2);
          lua_pushvalue(L, -2);
          lua_rawset(L, lists);
        }
        lua_pushlstring(L, value, vlen);
        lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        lua_pop(L, 2);
      }
    }
    p = value + vlen + 1;
  }
  if (lists) {
    lua_pushnil(L);
    while (lua_next(L, lists) != 0) {   /* name, list */
      luaL_Buffer b;
      lua_Integer i, n = (lua_Integer)lua_rawlen(L, -1);
      int list = lua_gettop(L);
      lua_pushvalue(L, -2);   /* the name, for the rawset below */
      luaL_buffinit(L, &b);
      for (i = 1; i <= n; i++) {
        if (i > 1)
          luaL_addstring(&b, ", ");
        lua_rawgeti(L, list, i);
        luaL_addvalue(&b);
      }
      luaL_pushresult(&b);
      lua_rawset(L, t);
      lua_pop(L, 1);   /* the list; the name stays for lua_next */
    }
    lua_remove(L, lists);
  }
}

/* }====================================================== */


/*
** {======================================================
** libcurl callbacks: C only, never Lua
** =======================================================
*/

/* The most header bytes a response may have: below libcurl's own limit
   (300 KB on the wire in 7.88 and 8.x), so a flood ends here, as a "limit"
   error, not in libcurl as a receive error taken for a connection fault. */
#define MAX_HEADER_BYTES ((size_t)200 << 10)

static size_t on_header (char *buf, size_t size, size_t nitems, void *ud) {
  aigc_request *r = (aigc_request *)ud;
  size_t len = size * nitems, nlen, vlen, i;
  const char *colon, *v, *vend;
  char *o;
  /* Header bytes are bytes: a stream's idle limit counts from the last
     one (libcurl hands us whole lines, the finest grain it offers). */
  if (r->idle_deadline > 0)
    r->idle_deadline = aigc_now() + r->timeout;
  if (r->want_status_line && len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
    /* A new response (the first, or the real one after a 1xx): forget
       the previous one. Only here: a header line that happens to start
       with "HTTP/" in the middle of the headers is just a header. */
    const char *sp = (const char *)memchr(buf, ' ', len);
    r->want_status_line = 0;
    aigc_buf_clear(&r->hdrs);
    r->nhdrs = 0;
    r->status = 0;
    if (sp != NULL) {
      long st = 0;
      for (sp++; sp < buf + len && *sp >= '0' && *sp <= '9' && st < 100000; sp++)
        st = st * 10 + (*sp - '0');
      r->status = st;
    }
    return len;
  }
  r->want_status_line = 0;
  colon = (const char *)memchr(buf, ':', len);
  if (colon == NULL) {
    /* The blank line ending the headers (or junk): a status line may
       follow (after a 1xx response). */
    if (len <= 2 && (len == 0 || buf[0] == '\r' || buf[0] == '\n'))
      r->want_status_line = 1;
    return len;
  }
  if (r->hdrs.len + len > MAX_HEADER_BYTES) {
    r->abort_reason = AIGC_ABORT_HEADERS;
    return 0;
  }
  nlen = (size_t)(colon - buf);
  v = colon + 1;
  vend = buf + len;
  while (v < vend && (*v == ' ' || *v == '\t'))
    v++;
  while (vend > v && (vend[-1] == '\r' || vend[-1] == '\n' || vend[-1] == ' ' || vend[-1] == '\t'))
    vend--;
  /* Room for a typical response's headers at once, not by doublings. */
  vlen = nlen + (size_t)(vend - v) + 2;
  if (aigc_buf_reserve(&r->hdrs, r->hdrs.cap == 0 && vlen < 1024 ? 1024 : vlen) != 0) {
    r->abort_reason = AIGC_ABORT_NOMEM;
    return 0;
  }
  /* Through a local pointer: stores through r->hdrs.data could alias r
     itself, which kept the compiler reloading it at every byte. */
  o = r->hdrs.data + r->hdrs.len;
  for (i = 0; i < nlen; i++) {
    char c = buf[i];
    if (c == '\0')
      c = ' ';
    *o++ = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
  }
  *o++ = '\0';
  vlen = (size_t)(vend - v);
  memcpy(o, v, vlen);
  for (i = 0; i < vlen; i++)   /* a NUL would cut the value short */
    if (o[i] == '\0')
      o[i] = ' ';
  o += vlen;
  *o++ = '\0';
  *o = '\0';
  r->hdrs.len = (size_t)(o - r->hdrs.data);
  r->nhdrs++;
  return len;
}

/* Appends one event to the queue: [u32 type_len][u32 data_len][type][data]. */
static int queue_event (aigc_request *r, const char *type, size_t tlen,
                        const char *data, size_t dlen) {
  uint32_t lens[2];
  if (tlen > UINT32_MAX || dlen > UINT32_MAX)
    return -1;
  lens[0] = (uint32_t)tlen;
  lens[1] = (uint32_t)dlen;
  if (aigc_buf_reserve(&r->events, sizeof lens + tlen + dlen) != 0)
    return -1;
  memcpy(r->events.data + r->events.len, lens, sizeof lens);
  memcpy(r->events.data + r->events.len + sizeof lens, type, tlen);
  memcpy(r->events.data + r->events.len + sizeof lens + tlen, data, dlen);
  r->events.len += sizeof lens + tlen + dlen;
  r->events.data[r->events.len] = '\0';
  return 0;
}

static int on_sse_event (void *ud, const aigc_sse_event *ev) {
  aigc_request *r = (aigc_request *)ud;
  if (r->saw_done)
    return 0;   /* nothing after [DONE] counts */
  if ((ev->has_data && ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0)
      || (ev->type_len == 4 && memcmp(ev->type, "done", 4) == 0)) {
    /* The end. The server should close the response right after; if it
       does not within a grace period, the engine ends it for us. */
    r->saw_done = 1;
    r->idle_deadline = 0;
    r->done_deadline = aigc_now() + AIGC_DONE_GRACE;
    return 0;
  }
  if (!ev->has_data && !(ev->type_len == 5 && memcmp(ev->type, "error", 5) == 0))
    return 0;   /* an event with a name but no data carries nothing */
  if (queue_event(r, ev->type, ev->type_len, ev->data, ev->data_len) != 0) {
    r->abort_reason = AIGC_ABORT_NOMEM;
    return 1;
  }
  return 0;
}

/*
** Decides, at the first body byte, how to read this response: as SSE when
** a stream was asked for, the status is 2xx and the server says
** text/event-stream (or says nothing and the body does not start like
** JSON); otherwise as one body (errors, or a server that ignored `stream`).
*/
static void decide_mode (aigc_request *r, const char *first, size_t n) {
  const char *ct;
  r->mode_decided = 1;
  r->sse = 0;
  if (!r->stream || r->status < 200 || r->status >= 300)
    return;
  ct = find_header(r, "content-type", NULL);
  if (ct != NULL && strstr(ct, "event-stream") != NULL)
    r->sse = 1;
  else if (ct != NULL && strstr(ct, "json") != NULL)
    r->sse = 0;
  else {
    size_t i = 0;
    while (i < n && (first[i] == ' ' || first[i] == '\n' || first[i] == '\r' || first[i] == '\t'))
      i++;
    r->sse = !(i < n && (first[i] == '{' || first[i] == '['));
  }
}

static size_t on_write (char *ptr, size_t size, size_t nmemb, void *ud) {
  aigc_request *r = (aigc_request *)ud;
  size_t n = size * nmemb;
  if (!r->mode_decided)
    decide_mode(r, ptr, n);
  r->received += n;
  if (r->received > r->max_bytes) {
    r->abort_reason = AIGC_ABORT_LIMIT;
    return 0;
  }
  if (r->sse) {
    int rc;
    if (r->idle_deadline > 0)
      r->idle_deadline = aigc_now() + r->timeout;
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
    if (r->engine && r->events.len > 0)
      aigc_engine_ready(r->engine, r);
  }
  else {
    if (r->idle_deadline > 0)
      r->idle_deadline = aigc_now() + r->timeout;
    if (aigc_buf_append(&r->resp, ptr, n) != 0) {
      r->abort_reason = AIGC_ABORT_NOMEM;
      return 0;
    }
  }
  return n;
}

/* }====================================================== */


/*
** {======================================================
** Attempts
** =======================================================
*/

/*
** Frees what only a pending request needs, once it is over. Lua cannot see
** this memory, so it must not wait for the request's __gc: results are
** often dropped in bulk long after, and the heap would fragment between.
** While the request is being delivered its memory is pinned: the free
** waits for the delivery to end (aigc_request_dispatch, aigc_request_unpin).
*/
static void free_transfer_memory (aigc_request *r) {
  if (r->delivering) {
    r->free_deferred = 1;
    return;
  }
  r->nhdrs = 0;
  aigc_buf_free(&r->hdrs);
  aigc_buf_free(&r->body);
  free(r->url);
  r->url = NULL;
  curl_slist_free_all(r->headers);
  r->headers = NULL;
  aigc_buf_free(&r->resp);
  aigc_buf_free(&r->events);
  aigc_buf_free(&r->draining);
  r->draining_read = 0;
  aigc_sse_free(&r->sse_parser);
  aigc_sse_init(&r->sse_parser, r->max_bytes);
  aigc_accum_free(&r->accum);
  aigc_accum_init(&r->accum, r->kind == AIGC_KIND_COMPLETION ? AIGC_ACCUM_COMPLETION
                                                             : AIGC_ACCUM_CHAT);
  aigc_json_arena_free(&r->arena);
  aigc_json_arena_init(&r->arena);
}

/* Resets what one attempt leaves behind, before (re)adding the handle. */
int aigc_request_setup_attempt (aigc_request *r) {
  r->status = 0;
  aigc_buf_clear(&r->resp);
  aigc_buf_clear(&r->hdrs);
  r->nhdrs = 0;
  r->want_status_line = 1;
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
  r->done_deadline = 0;
  r->retry_at = 0;
  aigc_sse_reset(&r->sse_parser);
  if (r->accum.chunks > 0 || r->accum.root.len > 0) {
    aigc_accum_free(&r->accum);
    aigc_accum_init(&r->accum, r->kind == AIGC_KIND_COMPLETION ? AIGC_ACCUM_COMPLETION
                                                               : AIGC_ACCUM_CHAT);
  }
  /* A stream's timeout is an idle limit between bytes, counted from now. */
  r->idle_deadline = r->stream ? aigc_now() + r->timeout : 0;
  return 0;
}

/*
** Seconds the server asked us to wait (retry-after-ms, then retry-after as
** seconds or an HTTP date), or NAN when it said nothing usable.
*/
static double server_retry_after (const aigc_request *r) {
  const char *v;
  char *end;
  double d;
  /* Never negative: a negative number is not a wait (ignored, as if not
     sent); a date in the past means now (0). */
  if ((v = find_header(r, "retry-after-ms", NULL)) != NULL) {
    d = strtod(v, &end);
    if (end != v && *end == '\0' && isfinite(d) && d >= 0)
      return d / 1000.0;
  }
  if ((v = find_header(r, "retry-after", NULL)) != NULL) {
    time_t when;
    d = strtod(v, &end);
    if (end != v && *end == '\0')
      return isfinite(d) && d >= 0 ? d : NAN;
    when = curl_getdate(v, NULL);
    if (when != (time_t)-1) {
      d = difftime(when, time(NULL));
      return d > 0 ? d : 0;
    }
  }
  return NAN;
}

/* Whether a response with this status may be retried (REFERENCE.md). */
static int status_retryable (const aigc_request *r, long status) {
  const char *v = find_header(r, "x-should-retry", NULL);
  if (v != NULL && strcmp(v, "true") == 0)
    return 1;
  if (v != NULL && strcmp(v, "false") == 0)
    return 0;
  return status == 408 || status == 409 || status == 429 || status >= 500;
}

/*
** The delay before the next attempt: the server's, when 0 < d <= 120 s;
** none (-1: do not retry) when it asks for longer; otherwise the SDKs'
** backoff min(0.5 * 2^n, 8) * (1 - 0.25 * rand), n = retries taken.
*/
static double retry_delay (aigc_request *r) {
  double d = server_retry_after(r);
  if (d == d) {
    if (d > 0 && d <= AIGC_MAX_RETRY_AFTER)
      return d;
    if (d > AIGC_MAX_RETRY_AFTER)
      return -1;
  }
  d = 0.5 * pow(2.0, (double)r->retries);
  if (d > 8.0)
    d = 8.0;
  return d * (1.0 - 0.25 * aigc_engine_random(r->engine));
}

/* }====================================================== */


/*
** {======================================================
** Ending a request
** =======================================================
*/

/*
** The path of a request's URL for log lines: no scheme, host or query
** (a query may carry credentials some providers put there).
*/
static const char *log_path (const aigc_request *r, char *buf, size_t size) {
  const char *p = r->url ? strstr(r->url, "://") : NULL;
  size_t n;
  p = p ? strchr(p + 3, '/') : NULL;
  if (p == NULL)
    p = "/";
  n = strcspn(p, "?#");
  if (n >= size)
    n = size - 1;
  memcpy(buf, p, n);
  buf[n] = '\0';
  return buf;
}

/* Logs how a request ended: "POST /v1/chat/completions -> 200 in 0.123 s". */
static void log_end (lua_State *L, int eidx, aigc_request *r, int vidx, int ok) {
  char path[256];
  const char *rid;
  if (r->engine == NULL || !r->engine->log_enabled)
    return;
  rid = find_header(r, "x-request-id", NULL);
  if (ok)
    aigc_engine_log(L, eidx, "info", "%s %s -> %ld in %.3f s%s%s%s",
                    r->method_get ? "GET" : "POST", log_path(r, path, sizeof path), r->status,
                    aigc_now() - r->started, rid ? " [request " : "", rid ? rid : "", rid ? "]" : "");
  else {
    lua_getfield(L, vidx, "kind");
    lua_getfield(L, vidx, "message");
    aigc_engine_log(L, eidx, "warn", "%s %s -> %s error after %.3f s: %s%s%s%s",
                    r->method_get ? "GET" : "POST", log_path(r, path, sizeof path),
                    lua_tostring(L, -2) ? lua_tostring(L, -2) : "?", aigc_now() - r->started,
                    lua_tostring(L, -1) ? lua_tostring(L, -1) : "", rid ? " [request " : "",
                    rid ? rid : "", rid ? "]" : "");
    lua_pop(L, 2);
  }
}

static void clear_callbacks (lua_State *L, int ridx) {
  lua_pushnil(L);
  lua_setiuservalue(L, ridx, AIGC_RQ_STREAM);
  lua_pushnil(L);
  lua_setiuservalue(L, ridx, AIGC_RQ_ON_DONE);
  lua_pushnil(L);
  lua_setiuservalue(L, ridx, AIGC_RQ_ON_ERROR);
}

/* The transfer is over for good: its easy handle goes back to the engine. */
static void recycle_easy (aigc_engine *e, aigc_request *r) {
  if (r->easy != NULL && !r->in_multi) {
    if (r->stale)   /* the only per-attempt option: not for the next request */
      curl_easy_setopt(r->easy, CURLOPT_FRESH_CONNECT, 0L);
    aigc_engine_recycle_easy(e, r->easy);
    r->easy = NULL;
  }
}

/*
** Pushes the request's outcome value: the result table (done), else the
** error object, made now if the end was decided where nothing could be
** allocated (a cancel keeps its reason as a string, or none; an escaped
** error leaves end_kind/end_msg). Made once: later calls get the same one.
*/
static void push_outcome (lua_State *L, int ridx, aigc_request *r) {
  int t = lua_getiuservalue(L, ridx, AIGC_RQ_RESULT);
  if (t == LUA_TTABLE || r->state == AIGC_DONE)
    return;
  aigc_error_new(L, r->end_kind ? r->end_kind : "canceled",
                 r->end_msg ? r->end_msg : "the request was canceled");
  if (t == LUA_TSTRING) {   /* cancel(why) */
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "message");
  }
  aigc_error_setint(L, "retries", r->retries);
  lua_remove(L, -2);
  /* A finalizer run by the allocations above may have made it already. */
  if (lua_getiuservalue(L, ridx, AIGC_RQ_RESULT) == LUA_TTABLE) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, ridx, AIGC_RQ_RESULT);
}

/*
** Runs the waiters of the request at ridx, each once, in the order they
** came: the list is taken out of its slot first, so a waiter added by one
** of them (req:_notify inside a waiter) goes to a new list, run on the next
** turn. An error a waiter raises is reported (aigc_engine_report).
*/
static void run_waiters (lua_State *L, int eidx, int ridx) {
  lua_Integer i, n;
  int list;
  if (lua_getiuservalue(L, ridx, AIGC_RQ_WAITERS) != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  list = lua_gettop(L);
  lua_pushnil(L);
  lua_setiuservalue(L, ridx, AIGC_RQ_WAITERS);   /* once */
  n = (lua_Integer)lua_rawlen(L, list);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    lua_pushvalue(L, ridx);
    if (aigc_pcall(L, 1, 0) != LUA_OK) {
      aigc_engine_report(L, eidx, -1);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

/*
** Runs r's end, exactly once: on_done(res) or on_error(err), then the
** waiter the Lua layer registered, then the engine lets go of it. Called
** by the loop (aigc_request_dispatch), by close() and by wait(); never by
** cancel() or a finalizer. Returns the callbacks run.
*/
int aigc_request_deliver_end (lua_State *L, int eidx, int ridx) {
  aigc_request *r = (aigc_request *)lua_touserdata(L, ridx);
  aigc_engine *e = r->engine;
  int count = 0, vidx;
  ridx = lua_absindex(L, ridx);
  eidx = lua_absindex(L, eidx);
  if (!r->end_pending || !aigc_terminal(r->state))
    return 0;
  aigc_engine_clear_end(e, r);
  if (e != NULL)
    aigc_engine_unready(e, r);
  luaL_checkstack(L, 8, "aigc end");
  push_outcome(L, ridx, r);
  vidx = lua_gettop(L);
  if (lua_getiuservalue(L, ridx, r->state == AIGC_DONE ? AIGC_RQ_ON_DONE : AIGC_RQ_ON_ERROR)
      != LUA_TNIL) {   /* a function or a callable */
    clear_callbacks(L, ridx);   /* once */
    lua_pushvalue(L, vidx);
    r->in_callback = 1;
    if (aigc_pcall(L, 1, 0) != LUA_OK) {
      aigc_engine_report(L, eidx, -1);
      lua_pop(L, 1);
    }
    r->in_callback = 0;
    count = 1;
  }
  else {
    lua_pop(L, 1);
    clear_callbacks(L, ridx);
  }
  run_waiters(L, eidx, ridx);
  lua_pop(L, 1);   /* the outcome */
  if (r->end_pending)   /* a new waiter came meanwhile (req:_notify in a callback) */
    return count;
  aigc_engine_drop(L, eidx, r);
  e = r->engine;
  if (e != NULL && e->closed) {   /* kept by close() until now */
    aigc_engine_unlink(e, r);
    aigc_request_detach(r);
  }
  return count;
}

/*
** Ends r (running) with the value on top of the stack (popped): the result
** table when ok, else the error object. Frees its slot (a queued request
** may start) and schedules its end (aigc_request_dispatch runs it next).
** A request canceled or closed while the value was being made (by a
** finalizer) keeps that end: the value is dropped.
*/
static int end_request (lua_State *L, int eidx, int ridx, aigc_request *r, int ok) {
  int vidx = lua_gettop(L);
  aigc_engine *e = r->engine;
  if (r->state != AIGC_RUNNING || e == NULL) {
    lua_pop(L, 1);
    return 0;
  }
  if (!ok) {   /* codec lane: no secret in any string of an error (error.c) */
    aigc_engine_scrub(L, eidx, vidx);
    e = r->engine;   /* the walk allocates: a finalizer may have ended r */
    if (r->state != AIGC_RUNNING || e == NULL) {
      lua_pop(L, 1);
      return 0;
    }
  }
  aigc_engine_release(e, r);
  aigc_engine_unready(e, r);
  recycle_easy(e, r);   /* before on_done: the next request may take it */
  r->state = ok ? AIGC_DONE : AIGC_FAILED;
  lua_pushvalue(L, vidx);
  lua_setiuservalue(L, ridx, AIGC_RQ_RESULT);
  lua_pushnil(L);
  lua_setiuservalue(L, ridx, AIGC_RQ_STREAM);
  aigc_engine_set_end(e, r);
  log_end(L, eidx, r, vidx, ok);
  free_transfer_memory(r);
  lua_pop(L, 1);
  return 0;
}

/* Adds the fields every failure carries: request id, status, retries... */
static void decorate_error (lua_State *L, aigc_request *r) {
  const char *rid = find_header(r, "x-request-id", NULL);
  if (rid != NULL) {
    lua_pushstring(L, rid);
    lua_setfield(L, -2, "request_id");
  }
  if (r->status > 0) {
    if (lua_getfield(L, -1, "status") == LUA_TNIL) {
      lua_pop(L, 1);
      aigc_error_setint(L, "status", (lua_Integer)r->status);
    }
    else
      lua_pop(L, 1);
  }
  aigc_error_setint(L, "retries", r->retries);
  if (r->hdrs.len > 0) {
    push_headers(L, r);
    lua_setfield(L, -2, "headers");
  }
}

/* Adds err.partial: what a stream had accumulated before it failed. */
static void add_partial (lua_State *L, aigc_request *r) {
  const aigc_json_value *acc;
  if (!r->sse || r->accum.chunks == 0)
    return;
  acc = aigc_accum_finish(&r->accum);
  if (acc == NULL)
    return;
  aigc_jsonlua_push(L, acc);
  lua_setfield(L, -2, "partial");
}

/* Pushes a new error whose message is built from a server string, scrubbed. */
static void new_error_scrubbed (lua_State *L, aigc_request *r, const char *kind,
                                const char *msg, size_t len) {
  aigc_error_new(L, kind, "");
  aigc_push_scrubbed(L, msg, len, r->engine ? r->engine->secret : NULL);
  lua_setfield(L, -2, "message");
}

/*
** Replaces the error a callback raised (on top, with its traceback appended
** by the handler) by an error object of kind "callback": message = what
** the callback raised, traceback = where.
*/
static void push_callback_error (lua_State *L) {
  size_t len;
  const char *full = luaL_tolstring(L, -1, &len);
  const char *tb = strstr(full, "\nstack traceback:");
  aigc_error_new(L, "callback", "");
  lua_pushlstring(L, full, tb ? (size_t)(tb - full) : len);
  lua_setfield(L, -2, "message");
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "traceback");
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/* Copies the string-or-number member `key` of object v into the error on top. */
static void copy_member (lua_State *L, aigc_request *r, const aigc_json_value *v, const char *key) {
  const aigc_json_value *m = aigc_json_get(v, key);
  if (m == NULL)
    return;
  if (m->type == AIGC_JSON_STRING)
    aigc_push_scrubbed(L, m->u.s, m->len, r->engine ? r->engine->secret : NULL);
  else if (m->type == AIGC_JSON_INT)
    aigc_push_int64(L, m->u.i);
  else if (m->type == AIGC_JSON_FLOAT)
    lua_pushnumber(L, (lua_Number)m->u.d);
  else
    return;
  lua_setfield(L, -2, key);
}

/*
** Pushes an error object for an API error found in a JSON value `v` (the
** body of an HTTP error, an "error" stream event, a 200 body with an
** "error" member): unwraps {"error": {...}} as the SDKs do, and keeps the
** whole decoded body in err.body.
*/
static void push_api_error (lua_State *L, aigc_request *r, const char *kind,
                            const aigc_json_value *v, const char *fallback) {
  const aigc_json_value *inner = aigc_json_get(v, "error");
  aigc_error_new(L, kind, fallback);
  if (inner != NULL && inner->type == AIGC_JSON_OBJECT) {
    copy_member(L, r, inner, "message");
    copy_member(L, r, inner, "type");
    copy_member(L, r, inner, "code");
    copy_member(L, r, inner, "param");
  }
  else if (inner != NULL && inner->type == AIGC_JSON_STRING)
    copy_member(L, r, v, "error");   /* {"error": "text"} (some servers) */
  else if (v->type == AIGC_JSON_OBJECT) {
    copy_member(L, r, v, "message");
    copy_member(L, r, v, "detail");   /* FastAPI-style servers */
    if (lua_getfield(L, -1, "detail") == LUA_TSTRING) {
      lua_setfield(L, -2, "message");
    }
    else
      lua_pop(L, 1);
  }
  if (inner != NULL && inner->type == AIGC_JSON_STRING) {
    lua_getfield(L, -1, "error");
    lua_setfield(L, -2, "message");
    lua_pushnil(L);
    lua_setfield(L, -2, "error");
  }
  aigc_jsonlua_push(L, v);
  lua_setfield(L, -2, "body");
}

/* Pushes the error for an HTTP status outside 2xx, from the body kept. */
static void push_http_error (lua_State *L, aigc_request *r, long status) {
  aigc_json_value v;
  aigc_json_error perr;
  char fallback[64];
  snprintf(fallback, sizeof fallback, "HTTP status %ld", status);
  aigc_json_arena_reset(&r->arena);
  if (r->resp.len > 0
      && aigc_json_parse(&r->arena, r->resp.data, r->resp.len, AIGC_JSON_DEFAULT_MAX_DEPTH, &v, &perr) == 0
      && (v.type == AIGC_JSON_OBJECT || v.type == AIGC_JSON_ARRAY)) {
    push_api_error(L, r, "http", &v, fallback);
  }
  else {
    /* Not JSON (a proxy's HTML page, plain text): keep it as text. */
    char msg[256];
    size_t i, n = 0;
    int space = 0;
    aigc_error_new(L, "http", "");
    for (i = 0; i < r->resp.len && n < 200; i++) {   /* one line, collapsed */
      unsigned char c = (unsigned char)r->resp.data[i];
      if (c <= ' ') {
        space = n > 0;
        continue;
      }
      if (space && n < sizeof msg - 1)
        msg[n++] = ' ';
      space = 0;
      msg[n++] = (char)c;
    }
    if (n == 0) {
      lua_pushstring(L, fallback);
      lua_setfield(L, -2, "message");
    }
    else {
      lua_pushfstring(L, "%s: ", fallback);
      aigc_push_scrubbed(L, msg, n, r->engine ? r->engine->secret : NULL);
      lua_concat(L, 2);
      lua_setfield(L, -2, "message");
    }
    if (r->resp.len > 0) {
      aigc_push_scrubbed(L, r->resp.data, r->resp.len > 65536 ? 65536 : r->resp.len,
                         r->engine ? r->engine->secret : NULL);
      lua_setfield(L, -2, "body");
    }
  }
  aigc_error_setint(L, "status", (lua_Integer)status);
  {
    double ra = server_retry_after(r);
    if (ra == ra) {
      lua_pushnumber(L, ra);
      lua_setfield(L, -2, "retry_after");
    }
  }
}

/* The text of choices[1]: message.content for chat, text for completions. */
static void set_text (lua_State *L, int res) {
  if (lua_getfield(L, res, "choices") == LUA_TTABLE
      && lua_rawgeti(L, -1, 1) == LUA_TTABLE) {
    if (lua_getfield(L, -1, "message") == LUA_TTABLE) {
      lua_getfield(L, -1, "content");
      lua_remove(L, -2);
    }
    else {
      lua_pop(L, 1);
      lua_getfield(L, -1, "text");
    }
    if (lua_type(L, -1) == LUA_TSTRING)
      lua_setfield(L, res, "text");
    else
      lua_pop(L, 1);
    lua_pop(L, 2);
    return;
  }
  lua_settop(L, res);
}

/* The fields decorate_result adds: the table is made with room for them
   (adding them to an exactly sized table rehashed it twice). */
#define RESULT_FIELDS 4

/* Adds text, request_id, headers and retries to the result on top. */
static void decorate_result (lua_State *L, aigc_request *r) {
  int res = lua_gettop(L);
  const char *rid = find_header(r, "x-request-id", NULL);
  if (r->kind == AIGC_KIND_CHAT || r->kind == AIGC_KIND_COMPLETION)
    set_text(L, res);
  if (rid != NULL) {
    lua_pushstring(L, rid);
    lua_setfield(L, res, "request_id");
  }
  push_headers(L, r);
  lua_setfield(L, res, "headers");
  lua_pushinteger(L, r->retries);
  lua_setfield(L, res, "retries");
}

/*
** The transfer is over and every event delivered: turn the response into
** a result or an error, or schedule a retry. Returns callbacks run.
*/
static int finish_transfer (lua_State *L, int eidx, int ridx, aigc_request *r) {
  int retryable = 0;
  long status = 0;
  if (r->easy != NULL)
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
  if (status > 0)
    r->status = status;

  /* A reused keep-alive connection that answers with something that is
     not HTTP at all was carrying bytes from before this request (a server
     that sent more than its Content-Length; libcurl before 8.x reuses such
     a connection). The connection was at fault, not the request: start
     again once on a new connection, as libcurl does for a reused
     connection found dead. */
  if ((r->curl_code == CURLE_UNSUPPORTED_PROTOCOL || r->curl_code == CURLE_WEIRD_SERVER_REPLY)
      && r->status == 0 && !r->delivered && r->stale == 0 && r->easy != NULL
      && r->engine != NULL && !r->engine->closed) {
    long connects = 1;
    if (curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects == 0) {
      aigc_engine_log(L, eidx, "warn", "a reused connection answered with garbage (%s): "
                      "starting again on a new connection", r->errbuf[0] ? r->errbuf : "not HTTP");
      if (r->state != AIGC_RUNNING || r->easy == NULL)   /* the log function canceled it */
        return 0;
      r->stale++;
      curl_easy_setopt(r->easy, CURLOPT_FRESH_CONNECT, 1L);
      r->retry_at = aigc_now() + 0.000001;
      r->idle_deadline = 0;
      r->transfer_done = 0;
      aigc_buf_clear(&r->resp);
      return 0;
    }
  }

  if (r->abort_reason == AIGC_ABORT_DEADLINE) {
    char msg[128];
    snprintf(msg, sizeof msg, "the call's deadline (%g s) passed", r->deadline);
    aigc_error_new(L, "timeout", msg);
    add_partial(L, r);
  }
  else if (r->abort_reason == AIGC_ABORT_HEADERS) {
    char msg[128];
    snprintf(msg, sizeof msg, "the response headers are larger than %zu KiB",
             MAX_HEADER_BYTES >> 10);
    aigc_error_new(L, "limit", msg);
  }
  else if (r->abort_reason == AIGC_ABORT_LIMIT) {
    char msg[128];
    snprintf(msg, sizeof msg, "the response is larger than max_response_bytes (%zu bytes)",
             r->max_bytes);
    aigc_error_new(L, "limit", msg);
    add_partial(L, r);
  }
  else if (r->abort_reason == AIGC_ABORT_NOMEM || r->curl_code == CURLE_OUT_OF_MEMORY) {
    aigc_error_new(L, "limit", "out of memory while receiving the response");
  }
  else if (r->abort_reason == AIGC_ABORT_IDLE) {
    char msg[128];
    snprintf(msg, sizeof msg, "no data from the server for %g s (the stream's idle timeout)",
             r->timeout);
    aigc_error_new(L, r->delivered ? "timeout" : "timeout", msg);
    add_partial(L, r);
    retryable = !r->delivered;
  }
  else if (r->curl_code == CURLE_BAD_CONTENT_ENCODING && r->status >= 200 && r->status < 300) {
    /* The server answered, and what it sent cannot be decoded (a body
       that is not the gzip it says): not a connection failure, and
       sending the POST again would only get the same. */
    const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->curl_code);
    char msg[CURL_ERROR_SIZE + 64];
    const char *ce = find_header(r, "content-encoding", NULL);
    snprintf(msg, sizeof msg, "the response body could not be decoded (Content-Encoding: %s): %s",
             ce ? ce : "?", detail);
    new_error_scrubbed(L, r, "parse", msg, strlen(msg));
    aigc_error_setint(L, "curl_code", (lua_Integer)r->curl_code);
  }
  else if (r->curl_code != CURLE_OK) {
    const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->curl_code);
    const char *kind = r->curl_code == CURLE_OPERATION_TIMEDOUT ? "timeout" : "connect";
    if (r->delivered) {
      char msg[CURL_ERROR_SIZE + 64];
      snprintf(msg, sizeof msg, "the stream was interrupted: %s", detail);
      new_error_scrubbed(L, r, "stream", msg, strlen(msg));
      add_partial(L, r);
    }
    else {
      new_error_scrubbed(L, r, kind, detail, strlen(detail));
      retryable = 1;
    }
    aigc_error_setint(L, "curl_code", (lua_Integer)r->curl_code);
  }
  else if (r->status < 200 || r->status >= 300) {
    push_http_error(L, r, r->status);
    retryable = status_retryable(r, r->status);
  }
  else if (r->sse) {
    const aigc_json_value *acc = aigc_accum_finish(&r->accum);
    if (acc == NULL)
      aigc_error_new(L, "limit", "out of memory while accumulating the stream");
    else if (!r->saw_done) {
      aigc_error_new(L, "stream", "the stream was incomplete: it ended before [DONE]");
      add_partial(L, r);
    }
    else if ((r->kind == AIGC_KIND_CHAT || r->kind == AIGC_KIND_COMPLETION)
             && aigc_accum_incomplete(&r->accum)) {
      aigc_error_new(L, "stream", r->accum.chunks == 0
                     ? "the stream was incomplete: [DONE] came before any choice"
                     : "the stream was incomplete: a choice has no finish_reason");
      add_partial(L, r);
    }
    else {
      aigc_jsonlua_push_room(L, acc, RESULT_FIELDS);
      decorate_result(L, r);
      return end_request(L, eidx, ridx, r, 1);
    }
  }
  else {
    aigc_json_value v;
    aigc_json_error perr;
    int rc;
    aigc_json_arena_reset(&r->arena);
    rc = aigc_json_parse(&r->arena, r->resp.data ? r->resp.data : "", r->resp.len,
                  AIGC_JSON_DEFAULT_MAX_DEPTH, &v, &perr);
    if (rc == -2)
      aigc_error_new(L, "limit", "out of memory while parsing the response");
    else if (rc == AIGC_JSON_ELIMIT)   /* codec lane: max_json_values / containers */
      aigc_error_json_limit(L, "the response", perr.message);
    else if (rc != 0) {
      char msg[200];
      if (r->resp.len == 0)
        snprintf(msg, sizeof msg, "the response body is empty (HTTP %ld)", r->status);
      else
        snprintf(msg, sizeof msg, "the response is not valid JSON (at byte %zu: %s)",
                 perr.offset, perr.message);
      aigc_error_new(L, "parse", msg);
      if (r->resp.len > 0) {
        aigc_push_scrubbed(L, r->resp.data, r->resp.len > 65536 ? 65536 : r->resp.len,
                           r->engine ? r->engine->secret : NULL);
        lua_setfield(L, -2, "body");
      }
    }
    else if (v.type != AIGC_JSON_OBJECT)
      aigc_error_new(L, "parse", "the response is not a JSON object");
    else if (aigc_json_get(&v, "error") != NULL && aigc_json_get(&v, "error")->type != AIGC_JSON_NULL
             && aigc_json_get(&v, "error")->type != AIGC_JSON_FALSE)
      push_api_error(L, r, "api", &v, "the server returned an error");
    else if ((r->kind == AIGC_KIND_CHAT || r->kind == AIGC_KIND_COMPLETION)
             && (aigc_json_get(&v, "choices") == NULL || aigc_json_get(&v, "choices")->type != AIGC_JSON_ARRAY))
      aigc_error_new(L, "parse", aigc_json_get(&v, "choices") == NULL
                     ? "the response has no choices"
                     : "the response's choices is not an array");
    else {
      aigc_jsonlua_push_room(L, &v, RESULT_FIELDS);
      decorate_result(L, r);
      if (r->stream && lua_getiuservalue(L, ridx, AIGC_RQ_STREAM) == LUA_TNIL)
        lua_pop(L, 1);
      else if (r->stream) {
        /* Asked to stream, the server answered in one piece: deliver it as
           one delta so the callback still sees the text. */
        int st;
        lua_getfield(L, -2, "text");
        lua_pushvalue(L, -3);
        if (r->state != AIGC_RUNNING) {   /* canceled by a finalizer meanwhile */
          lua_pop(L, 4);
          return 0;
        }
        r->in_callback = 1;
        st = aigc_pcall(L, 2, 0);
        r->in_callback = 0;
        if (r->state != AIGC_RUNNING) {   /* canceled or closed inside: that end wins */
          lua_pop(L, st != LUA_OK ? 2 : 1);
          return 0;
        }
        if (st != LUA_OK) {
          push_callback_error(L);
          lua_replace(L, -2);   /* replaces the result */
          decorate_error(L, r);
          return end_request(L, eidx, ridx, r, 0);
        }
      }
      return end_request(L, eidx, ridx, r, 1);
    }
  }

  /* An error is on top of the stack. */
  decorate_error(L, r);
  if (retryable && r->state == AIGC_RUNNING && r->engine != NULL && !r->engine->closed
      && r->retries < r->max_retries) {
    double delay = retry_delay(r);
    if (delay >= 0 && r->deadline_at > 0 && aigc_now() + delay >= r->deadline_at) {
      /* The wait would pass the deadline: this error is the call's. */
      aigc_engine_log(L, eidx, "warn", "not retrying: waiting %.3f s would pass the call's "
                      "deadline (%g s)", delay, r->deadline);
      delay = -1;
    }
    if (delay >= 0 && r->state == AIGC_RUNNING) {
      lua_getfield(L, -1, "kind");
      lua_getfield(L, -2, "message");
      aigc_engine_log(L, eidx, "warn", "retrying in %.3f s (retry %d of %d) after %s error: %s",
                      delay, r->retries + 1, r->max_retries,
                      lua_tostring(L, -2), lua_tostring(L, -1));
      lua_pop(L, 3);
      if (r->state != AIGC_RUNNING)   /* the log function canceled it */
        return 0;
      r->retries++;
      r->retry_at = aigc_now() + (delay > 0 ? delay : 0.000001);
      r->idle_deadline = 0;
      r->transfer_done = 0;
      aigc_buf_clear(&r->resp);
      return 0;
    }
  }
  aigc_error_setint(L, "retries", r->retries);
  return end_request(L, eidx, ridx, r, 0);
}

/*
** Fails a running request right now (an error event, malformed chunk or
** failing stream callback) with the error on top of the stack: the
** transfer is stopped (the connection closed) and nothing more delivered.
*/
static int fail_now (lua_State *L, int eidx, int ridx, aigc_request *r) {
  add_partial(L, r);
  decorate_error(L, r);
  return end_request(L, eidx, ridx, r, 0);   /* the request is over: no more events */
}

/*
** The text delta of a chunk for the stream callback: choice 0's
** delta.content (chat) or text (completions). Choice 0 is the one with
** "index": 0 (or no index), wherever it sits in "choices": with n > 1 a
** server sends each choice's pieces in chunks of their own, and a
** one-parameter callback must not get the choices' words interleaved.
*/
static const aigc_json_value *chunk_delta (const aigc_json_value *chunk, aigc_kind kind) {
  const aigc_json_value *choices = aigc_json_get(chunk, "choices"), *c = NULL, *d;
  size_t i;
  if (choices == NULL || choices->type != AIGC_JSON_ARRAY)
    return NULL;
  for (i = 0; i < choices->len && c == NULL; i++) {
    const aigc_json_value *idx = aigc_json_get(&choices->u.items[i], "index");
    if (idx == NULL || (idx->type == AIGC_JSON_INT && idx->u.i == 0))
      c = &choices->u.items[i];
  }
  if (c == NULL)
    return NULL;
  if (kind == AIGC_KIND_COMPLETION)
    d = aigc_json_get(c, "text");
  else {
    d = aigc_json_get(c, "delta");
    d = d ? aigc_json_get(d, "content") : NULL;
  }
  return (d != NULL && d->type == AIGC_JSON_STRING) ? d : NULL;
}

/* Handles one queued stream event. Returns the callbacks run (0 or 1+). */
static int handle_event (lua_State *L, int eidx, int ridx, aigc_request *r,
                         const char *type, size_t tlen, const char *data, size_t dlen) {
  aigc_json_value chunk;
  aigc_json_error perr;
  const aigc_json_value *err, *delta;
  size_t before;
  int rc, st, nargs;
  aigc_json_arena_reset(&r->arena);
  rc = aigc_json_parse(&r->arena, data, dlen, AIGC_JSON_DEFAULT_MAX_DEPTH, &chunk, &perr);
  if (rc == -2 || rc == AIGC_JSON_ELIMIT) {
    if (rc == AIGC_JSON_ELIMIT)   /* codec lane: max_json_values / containers */
      aigc_error_json_limit(L, "a stream event", perr.message);
    else
      aigc_error_new(L, "limit", "out of memory while parsing a stream event");
    return fail_now(L, eidx, ridx, r);
  }
  if (tlen == 5 && memcmp(type, "error", 5) == 0) {
    if (rc == 0 && chunk.type == AIGC_JSON_OBJECT)
      push_api_error(L, r, "api", &chunk, "the server sent an error event");
    else {
      new_error_scrubbed(L, r, "stream", data, dlen > 500 ? 500 : dlen);
      if (dlen == 0) {
        lua_pushliteral(L, "the server sent an error event");
        lua_setfield(L, -2, "message");
      }
    }
    return fail_now(L, eidx, ridx, r);
  }
  if (rc != 0) {
    char msg[200];
    snprintf(msg, sizeof msg, "a stream event is not valid JSON (at byte %zu: %s)",
             perr.offset, perr.message);
    aigc_error_new(L, "parse", msg);
    aigc_push_scrubbed(L, data, dlen > 65536 ? 65536 : dlen, r->engine ? r->engine->secret : NULL);
    lua_setfield(L, -2, "body");
    return fail_now(L, eidx, ridx, r);
  }
  err = aigc_json_get(&chunk, "error");
  if (err != NULL && err->type != AIGC_JSON_NULL && err->type != AIGC_JSON_FALSE) {
    push_api_error(L, r, "api", &chunk, "the server sent an error in the stream");
    return fail_now(L, eidx, ridx, r);
  }
  before = r->accum.chunks;
  rc = aigc_accum_add(&r->accum, &chunk);
  if (rc == AIGC_ACCUM_NOMEM) {
    aigc_error_new(L, "limit", "out of memory while accumulating the stream");
    return fail_now(L, eidx, ridx, r);
  }
  if (rc == AIGC_ACCUM_LIMIT) {   /* codec lane */
    aigc_error_json_limit(L, "the streamed reply", r->accum.error);
    return fail_now(L, eidx, ridx, r);
  }
  if (rc == AIGC_ACCUM_BADSHAPE) {
    char msg[160];
    snprintf(msg, sizeof msg, "unexpected stream chunk: %s", r->accum.error);
    aigc_error_new(L, "parse", msg);
    return fail_now(L, eidx, ridx, r);
  }
  if (r->accum.chunks == before)
    return 0;   /* skipped (an Azure content-filter event) */
  r->delivered = 1;
  if (lua_getiuservalue(L, ridx, AIGC_RQ_STREAM) == LUA_TNIL) {   /* else a function or callable */
    lua_pop(L, 1);
    return 0;
  }
  delta = chunk_delta(&chunk, r->kind);
  if (delta != NULL)
    lua_pushlstring(L, delta->u.s, delta->len);
  else
    lua_pushnil(L);
  nargs = 1;
  if (r->want_chunk) {
    const aigc_json_value *usage = aigc_json_get(&chunk, "usage");
    aigc_jsonlua_push(L, &chunk);
    /* include_usage (sent by default) puts "usage": null in every chunk
       but the last: leave it out, so that `if chunk.usage then` works. */
    if (usage != NULL && usage->type == AIGC_JSON_NULL) {
      lua_pushnil(L);
      lua_setfield(L, -2, "usage");
    }
    nargs = 2;
  }
  if (r->state != AIGC_RUNNING) {   /* canceled by a finalizer while the args were made */
    lua_pop(L, nargs + 1);
    return 0;
  }
  r->in_callback = 1;
  st = aigc_pcall(L, nargs, 0);
  r->in_callback = 0;
  if (st != LUA_OK) {
    if (r->state != AIGC_RUNNING) {   /* canceled or closed inside: say nothing */
      lua_pop(L, 1);
      return 1;
    }
    push_callback_error(L);
    fail_now(L, eidx, ridx, r);
  }
  return 1;
}

/*
** Dispatches what is pending for the request at ridx: queued stream events
** (at most `budget` callbacks, 0 = all), then, once the transfer is over,
** the end of the request, then its end's callbacks. A request still
** holding events when the budget runs out goes back on the ready list.
**
** The request is pinned meanwhile (`delivering`): a finalizer that cancels
** it or closes the client defers the frees until we are done, and every
** step below re-checks the state. The events delivered are swapped out of
** `events` (where libcurl appends, and a nested drive may reallocate) into
** `draining`, which only this function touches.
*/
int aigc_request_dispatch (lua_State *L, int eidx, int ridx, int budget) {
  aigc_request *r = (aigc_request *)lua_touserdata(L, ridx);
  aigc_engine *e = r->engine;
  int count = 0;
  luaL_checkstack(L, 16, "aigc dispatch");
  r->delivering++;
  while (r->state == AIGC_RUNNING && e != NULL && !e->closed
         && r->abort_reason != AIGC_ABORT_DEADLINE) {
    uint32_t lens[2];
    const char *p;
    if (r->draining_read >= r->draining.len) {
      aigc_buf t;
      if (r->events.len == 0)
        break;
      t = r->draining;
      r->draining = r->events;
      r->events = t;
      aigc_buf_clear(&r->events);
      r->draining_read = 0;
    }
    if (budget > 0 && count >= budget) {
      aigc_engine_ready(e, r);
      break;
    }
    p = r->draining.data + r->draining_read;
    memcpy(lens, p, sizeof lens);
    r->draining_read += sizeof lens + lens[0] + lens[1];
    count += handle_event(L, eidx, ridx, r, p + sizeof lens, lens[0],
                          p + sizeof lens + lens[0], lens[1]);
    e = r->engine;
  }
  if (r->state == AIGC_RUNNING && r->draining_read >= r->draining.len) {
    aigc_buf_clear(&r->draining);
    r->draining_read = 0;
  }
  if (r->state == AIGC_RUNNING && r->transfer_done && e != NULL && !e->closed
      && ((r->draining.len == 0 && r->events.len == 0) || r->abort_reason == AIGC_ABORT_DEADLINE))
    count += finish_transfer(L, eidx, ridx, r);
  if (--r->delivering == 0 && r->free_deferred) {
    r->free_deferred = 0;
    free_transfer_memory(r);
  }
  if (r->end_pending && (budget <= 0 || count < budget))
    count += aigc_request_deliver_end(L, eidx, ridx);
  return count;
}

/* After an error escaped a delivery (see aigc_engine_drive): not pinned. */
void aigc_request_unpin (aigc_request *r) {
  r->delivering = 0;
  r->in_callback = 0;
  if (r->free_deferred) {
    r->free_deferred = 0;
    free_transfer_memory(r);
  }
}

/*
** Cancels the request at ridx if it is not over: out of libcurl (closing
** its connection), out of the queue; its stream callback and on_done are
** forgotten at once (nothing is delivered after a cancel); its on_error
** and waiter run from the loop with the "canceled" error. No Lua
** allocation here (see aigc.h): cancel() may run in any finalizer, and the
** error object is made when first needed (push_outcome).
*/
void aigc_request_cancel (lua_State *L, int ridx, const char *why, int why_idx) {
  aigc_request *r = (aigc_request *)lua_touserdata(L, ridx);
  aigc_engine *e = r->engine;
  int listening;
  ridx = lua_absindex(L, ridx);
  if (aigc_terminal(r->state))
    return;
  r->state = AIGC_CANCELED;
  r->end_kind = "canceled";
  r->end_msg = why;
  if (why_idx != 0) {
    lua_pushvalue(L, why_idx);
    lua_setiuservalue(L, ridx, AIGC_RQ_RESULT);
  }
  if (e != NULL) {
    aigc_engine_release(e, r);
    aigc_engine_unready(e, r);
    recycle_easy(e, r);
  }
  free_transfer_memory(r);
  lua_pushnil(L);
  lua_setiuservalue(L, ridx, AIGC_RQ_STREAM);
  lua_pushnil(L);
  lua_setiuservalue(L, ridx, AIGC_RQ_ON_DONE);
  listening = lua_getiuservalue(L, ridx, AIGC_RQ_ON_ERROR) != LUA_TNIL;
  listening |= lua_getiuservalue(L, ridx, AIGC_RQ_WAITERS) != LUA_TNIL;
  lua_pop(L, 2);
  if (e == NULL)
    return;
  if (listening)
    aigc_engine_set_end(e, r);   /* the waiter hears it from the loop */
  else {
    lua_getiuservalue(L, ridx, AIGC_RQ_ENGINE);
    aigc_engine_drop(L, lua_gettop(L), r);
    lua_pop(L, 1);
  }
}

/*
** Ends r with a failure decided where Lua may not allocate (static strings;
** the error object is made when first asked for). Its on_error and waiter,
** if any, run from the loop; the stream callback and on_done never again.
*/
void aigc_request_end_static (lua_State *L, int eidx, aigc_request *r, aigc_state state,
                              const char *kind, const char *msg) {
  aigc_engine *e = r->engine;
  if (aigc_terminal(r->state))
    return;
  r->state = state;
  r->end_kind = kind;
  r->end_msg = msg;
  if (e != NULL) {
    aigc_engine_release(e, r);
    aigc_engine_unready(e, r);
    recycle_easy(e, r);
  }
  free_transfer_memory(r);
  if (e != NULL && aigc_engine_push_request(L, eidx, r)) {   /* (allocates nothing) */
    int ridx = lua_gettop(L), listening;
    lua_pushnil(L);
    lua_setiuservalue(L, ridx, AIGC_RQ_STREAM);
    lua_pushnil(L);
    lua_setiuservalue(L, ridx, AIGC_RQ_ON_DONE);
    listening = lua_getiuservalue(L, ridx, AIGC_RQ_ON_ERROR) != LUA_TNIL;
    listening |= lua_getiuservalue(L, ridx, AIGC_RQ_WAITERS) != LUA_TNIL;
    lua_pop(L, 2);
    if (listening)
      aigc_engine_set_end(e, r);
    else
      aigc_engine_drop(L, eidx, r);
    lua_pop(L, 1);
  }
}

/* The engine closed: what the request holds in libcurl is gone. */
void aigc_request_detach (aigc_request *r) {
  r->engine = NULL;
  free_transfer_memory(r);
}

/* }====================================================== */


/*
** {======================================================
** Submitting
** =======================================================
*/

/* Reads an optional callback params[field] into the request's slot. */
static int opt_callback (lua_State *L, int t, const aigc_argctx *cx, const char *field,
                         int ridx, int slot) {
  int type = lua_getfield(L, t, field);
  if (type == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (type != LUA_TFUNCTION) {
    if (luaL_getmetafield(L, -1, "__call") == LUA_TNIL)
      aigc_argerror(L, cx->arg, cx->fname, "%s.%s: a function expected, got %s", cx->what, field,
                    luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  lua_setiuservalue(L, ridx, slot);
  return 1;
}

/* Whether the stream callback at idx declares a second parameter (chunk). */
static int wants_chunk (lua_State *L, int idx) {
  int nparams, isvararg;
  if (lua_type(L, idx) != LUA_TFUNCTION || !aigc_nparams(L, idx, &nparams, &isvararg))
    return 1;   /* a callable, or a Lua that cannot tell: give it the chunk */
  return isvararg || nparams >= 2;
}

static char *dup_url (lua_State *L, const aigc_engine *e, const char *path, const char *query) {
  size_t blen = strlen(e->base_url), plen = strlen(path), qlen = query ? strlen(query) : 0;
  char *url = (char *)malloc(blen + plen + qlen + 3);
  char *p;
  if (url == NULL)
    luaL_error(L, "not enough memory");
  p = url;
  memcpy(p, e->base_url, blen);
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

/*
** Sets the options of the transfer. A handle fresh from curl_easy_init gets
** every option; one that served an earlier request of this engine (see
** aigc_engine_take_easy) already has those that depend on the engine only,
** so it gets just the ones that can differ between two requests, every
** one of them, never left to the default (setting the rest again cost
** ~2% of a request: libcurl copies and parses the strings each time).
*/
static int setup_easy (aigc_request *r, aigc_engine *e, int fresh) {
  CURL *h = r->easy;
  CURLcode rc = CURLE_OK;
#define SET(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(h, opt, val); } while (0)
  /* Per request. */
  SET(CURLOPT_ERRORBUFFER, r->errbuf);
  SET(CURLOPT_URL, r->url);
  SET(CURLOPT_PRIVATE, (void *)r);
  SET(CURLOPT_WRITEDATA, (void *)r);
  SET(CURLOPT_HEADERDATA, (void *)r);
  SET(CURLOPT_HTTPHEADER, r->headers ? r->headers
                          : (r->stream && e->stream_headers) ? e->stream_headers : e->headers);
  if (r->method_get) {
    SET(CURLOPT_POSTFIELDS, NULL);   /* a reused handle may have posted */
    SET(CURLOPT_HTTPGET, 1L);
  }
  else {
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body.len);
    SET(CURLOPT_POSTFIELDS, r->body.data ? r->body.data : "");
  }
  SET(CURLOPT_CONNECTTIMEOUT_MS, (long)ceil(r->connect_timeout * 1000.0));
  /* Non-streamed calls have a total deadline; a stream only an idle one
     (the engine's own timer), never a total. */
  SET(CURLOPT_TIMEOUT_MS, r->stream ? 0L : (long)ceil(r->timeout * 1000.0));
  if (rc != CURLE_OK)
    return -1;
  if (!fresh)
    return 0;

  /* Per engine: the same for every request of this client. */
  SET(CURLOPT_WRITEFUNCTION, on_write);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_FOLLOWLOCATION, 0L);   /* never replay a POST, never leak a key */
  SET(CURLOPT_TCP_KEEPALIVE, 1L);
  SET(CURLOPT_ACCEPT_ENCODING, "");
  if (rc != CURLE_OK)
    return -1;
  aigc_engine_socket_options(e, h);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
  if (strncmp(e->base_url, "https:", 6) == 0)
    curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);   /* prefer one HTTP/2 connection */
  if (e->insecure) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (e->ca_file != NULL && curl_easy_setopt(h, CURLOPT_CAINFO, e->ca_file) != CURLE_OK)
    return -1;
  if (e->ca_path != NULL && curl_easy_setopt(h, CURLOPT_CAPATH, e->ca_path) != CURLE_OK)
    return -1;
  if (e->proxy != NULL && curl_easy_setopt(h, CURLOPT_PROXY, e->proxy) != CURLE_OK)
    return -1;
#undef SET
  return 0;
}

static const char *const kind_names[] = { "chat", "completion", "json", "get", NULL };

/*
** eng:submit(kind, params [, opts]) -> request
**   kind   "chat" | "completion" | "json" | "get"
**   params the request table (nil for "get"); its control keys (stream,
**          on_done, on_error, timeout, connect_timeout, max_retries,
**          max_response_bytes) configure the call and are not sent
**   opts   { path =, headers = {"Name: value", ...}, query = "a=b" } for
**          what the Lua layer computed (Azure paths, per-call headers)
*/
int aigc_request_submit (lua_State *L) {
  aigc_engine *e = aigc_check_engine(L, 1);
  aigc_kind kind = (aigc_kind)luaL_checkoption(L, 2, NULL, kind_names);
  int has_params = !lua_isnoneornil(L, 3), ridx, stream = 0, strong = 0, fresh;
  const char *path = NULL, *query = NULL;   /* NULL query: the engine's */
  aigc_argctx cx = { "submit", 2, "params" };
  aigc_request *r;

  if (kind != AIGC_KIND_GET || has_params)
    luaL_checktype(L, 3, LUA_TTABLE);
  if (!lua_isnoneornil(L, 4))
    luaL_checktype(L, 4, LUA_TTABLE);
  lua_settop(L, 4);

  /* Everything is checked before anything is allocated. */
  if (!lua_isnil(L, 4)) {
    if (lua_getfield(L, 4, "path") != LUA_TNIL)
      path = luaL_checkstring(L, -1);   /* anchored by opts until we return */
    lua_pop(L, 1);
    if (lua_getfield(L, 4, "query") != LUA_TNIL)
      query = luaL_checkstring(L, -1);
    lua_pop(L, 1);
    /* Who the user called (client:chat...): misuse is reported as theirs. */
    if (lua_getfield(L, 4, "fname") == LUA_TSTRING)
      cx.fname = lua_tostring(L, -1);   /* anchored by opts */
    lua_pop(L, 1);
    if (lua_getfield(L, 4, "arg") == LUA_TNUMBER)
      cx.arg = (int)lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  if (path == NULL) {
    if (kind == AIGC_KIND_CHAT) path = "/chat/completions";
    else if (kind == AIGC_KIND_COMPLETION) path = "/completions";
    else return luaL_argerror(L, 4, "opts.path is required for this kind");
  }
  if (has_params && (kind == AIGC_KIND_CHAT || kind == AIGC_KIND_COMPLETION)) {
    int t = lua_getfield(L, 3, "stream");
    if (t == LUA_TFUNCTION || (t == LUA_TBOOLEAN && lua_toboolean(L, -1)))
      stream = 1;
    else if (t == LUA_TTABLE && luaL_getmetafield(L, -1, "__call") != LUA_TNIL) {
      lua_pop(L, 1);
      stream = 1;
    }
    else if (t != LUA_TNIL && t != LUA_TBOOLEAN)
      return aigc_argerror(L, cx.arg, cx.fname, "params.stream: a boolean or a function "
                           "expected, got %s", luaL_typename(L, -1));
    lua_pop(L, 1);
  }

  /* The default model as a Lua string (index 5), read before any
     allocation could run a finalizer that closes the client and frees it. */
  if (e->model != NULL && kind != AIGC_KIND_GET)
    lua_pushstring(L, e->model);
  else
    lua_pushnil(L);

  r = (aigc_request *)lua_newuserdatauv(L, sizeof *r, AIGC_RQ_NSLOTS);
  memset(r, 0, sizeof *r);
  r->state = AIGC_CANCELED;   /* "closed" until it is handed to the engine */
  r->kind = kind;
  r->max_bytes = e->max_bytes;
  aigc_sse_init(&r->sse_parser, r->max_bytes);
  aigc_accum_init(&r->accum, kind == AIGC_KIND_COMPLETION ? AIGC_ACCUM_COMPLETION
                                                         : AIGC_ACCUM_CHAT);
  aigc_json_arena_init(&r->arena);
  luaL_setmetatable(L, AIGC_REQUEST_MT);
  ridx = lua_gettop(L);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, ridx, AIGC_RQ_ENGINE);

  r->stream = stream;
  r->method_get = kind == AIGC_KIND_GET;
  r->timeout = e->timeout;
  r->connect_timeout = e->connect_timeout;
  r->deadline = e->deadline;
  r->max_retries = e->max_retries;
  if (!lua_isnil(L, 4))   /* the Lua layer passes a per-call deadline here */
    r->deadline = aigc_opt_deadline(L, 4, &cx, r->deadline);
  if (has_params) {
    r->timeout = aigc_opt_seconds(L, 3, &cx, "timeout", e->timeout);
    r->connect_timeout = aigc_opt_seconds(L, 3, &cx, "connect_timeout",
                                          e->connect_timeout);
    r->deadline = aigc_opt_deadline(L, 3, &cx, r->deadline);
    r->max_retries = (int)aigc_opt_integer(L, 3, &cx, "max_retries", e->max_retries, 0, 100);
    r->max_bytes = (size_t)aigc_opt_integer(L, 3, &cx, "max_response_bytes",
                                            (int64_t)e->max_bytes, 1, (int64_t)1 << 40);
    r->sse_parser.max_event = r->max_bytes;
    if (stream && lua_getfield(L, 3, "stream") != LUA_TBOOLEAN) {
      r->want_chunk = wants_chunk(L, -1);
      lua_setiuservalue(L, ridx, AIGC_RQ_STREAM);
      strong = 1;
    }
    else if (stream)
      lua_pop(L, 1);
    strong |= opt_callback(L, 3, &cx, "on_done", ridx, AIGC_RQ_ON_DONE);
    strong |= opt_callback(L, 3, &cx, "on_error", ridx, AIGC_RQ_ON_ERROR);
  }

  /* codec lane: what decoding one reply (or stream event) may build */
  r->arena.limits = e->json_limits;
  if (has_params) {
    r->arena.limits.max_values = (size_t)aigc_opt_integer(L, 3, &cx, "max_json_values",
        (int64_t)e->json_limits.max_values, 1, (int64_t)1 << 40);
    r->arena.limits.max_containers = (size_t)aigc_opt_integer(L, 3, &cx, "max_json_containers",
        (int64_t)e->json_limits.max_containers, 1, (int64_t)1 << 40);
  }
  r->accum.limits = r->arena.limits;

  if (!lua_isnil(L, 4)) {
    if (lua_getfield(L, 4, "headers") == LUA_TTABLE)
      r->headers = aigc_build_headers(L, lua_gettop(L));
    lua_pop(L, 1);
  }
  if (!r->method_get) {
    /* May run Lua (metamethods) and allocates: anything may happen to the
       engine meanwhile, which is why nothing of it was read before. */
    if (has_params)
      aigc_jsonlua_encode_params(L, 3, &r->body, kind, lua_tostring(L, 5), stream, &cx);
    else if (aigc_buf_append(&r->body, "{}", 2) != 0)
      return luaL_error(L, "not enough memory");
  }
  /* The last Lua allocation (it may grow the engine's tables). */
  aigc_engine_hold(L, 1, r, ridx, strong);

  /* A finalizer run by any allocation above may have closed the client:
     from here on there are no Lua allocations until the request is in the
     engine's lists (where close() would find and cancel it). */
  if (e->closed || e->closing) {
    aigc_engine_drop(L, 1, r);
    return luaL_error(L, "attempt to use a closed client (it was closed while the request was made)");
  }
  r->url = dup_url(L, e, path, query != NULL ? query : e->query);
  r->easy = aigc_engine_take_easy(e, &fresh);
  if (r->easy == NULL) {
    aigc_engine_drop(L, 1, r);
    return luaL_error(L, "curl_easy_init failed");
  }
  if (setup_easy(r, e, fresh) != 0) {
    aigc_engine_drop(L, 1, r);
    return luaL_error(L, "could not configure the transfer (a bad ca_file, ca_path or proxy?)");
  }

  /* Hand it to the engine. */
  aigc_engine_link(e, r);
  r->state = AIGC_QUEUED;
  r->started = aigc_now();
  if (r->deadline > 0)
    r->deadline_at = r->started + r->deadline;
  aigc_engine_start(e, r);
  /* Logged once it is in the engine: the log function may close the client
     or cancel (a close then cancels this request like any other). */
  if (e->log_enabled && !e->closed) {
    char lpath[256];
    if (e->log_bodies && !r->method_get)
      aigc_engine_log(L, 1, "debug", "%s %s%s body: %.*s", "POST", log_path(r, lpath, sizeof lpath),
                      stream ? " (stream)" : "", (int)(r->body.len > 800 ? 800 : r->body.len),
                      r->body.data ? r->body.data : "");
    else
      aigc_engine_log(L, 1, "debug", "%s %s%s", r->method_get ? "GET" : "POST",
                      log_path(r, lpath, sizeof lpath), stream ? " (stream)" : "");
  }
  lua_settop(L, ridx);
  return 1;
}

/* }====================================================== */


/*
** {======================================================
** The request object
** =======================================================
*/

/* Pushes the request's outcome: res | nil, err | nil, nil (pending). */
static int push_result (lua_State *L, int ridx, aigc_request *r) {
  if (r->state == AIGC_DONE) {
    lua_getiuservalue(L, ridx, AIGC_RQ_RESULT);
    return 1;
  }
  lua_pushnil(L);
  if (aigc_terminal(r->state))
    push_outcome(L, ridx, r);
  else
    lua_pushnil(L);
  return 2;
}

static int req_status (lua_State *L) {
  aigc_request *r = aigc_check_request(L, 1);
  lua_pushstring(L, state_names[r->state]);
  return 1;
}

static int req_result (lua_State *L) {
  aigc_request *r = aigc_check_request(L, 1);
  return push_result(L, 1, r);
}

/*
** An error escaped the drive (or the interrupt probe) while this call
** waited for the request at 1: unless it is over, the request is canceled
** (an interrupted call leaves nothing running), and the error goes on.
*/
static int wait_failed (lua_State *L, aigc_request *r) {
  lua_pushvalue(L, -1);   /* the error */
  lua_replace(L, 3);
  lua_settop(L, 3);
  if (!aigc_terminal(r->state))
    aigc_request_cancel(L, 1, aigc_is_interrupt(L, 3) ? "interrupted"
                                                      : "the call waiting for it raised an error", 0);
  return lua_error(L);
}

/*
** Drives the engine of the request at 1 (pushed at 2) until the request is
** over or `until` (>= 0) passes. Wakes at least every second to check, and
** gives a newly installed debug hook (Ctrl-C) its chance at once.
*/
/*
** Whether the queued request r can never start: every slot is held by a
** request being delivered further up the stack (a blocking call inside a
** stream callback under max_concurrency = 1: the callback waits for r, r
** waits for the slot its caller holds until the callback returns).
*/
static int cannot_start (const aigc_request *r) {
  const aigc_engine *e = r->engine;
  const aigc_request *o;
  int blocked = 0;
  if (r->state != AIGC_QUEUED || e == NULL || e->max_concurrency <= 0
      || e->running < e->max_concurrency)
    return 0;
  for (o = e->all; o != NULL; o = o->all_next)
    if (o->has_slot && o->delivering)
      blocked++;
  return blocked >= e->running;
}

static void wait_for (lua_State *L, aigc_request *r, double until) {
  aigc_hooks hooks;
  int status;
  aigc_hooks_snap(L, &hooks);
  while (!aigc_terminal(r->state) && r->engine != NULL && !r->engine->closed) {
    double slice = 1.0;
    if (cannot_start(r)) {
      aigc_request_end_static(L, 2, r, AIGC_FAILED, "limit", "the request cannot start: every slot "
                              "of max_concurrency is held by a request whose callback is waiting "
                              "for this one (start it with chat_async instead)");
      break;
    }
    if (until >= 0) {
      double left = until - aigc_now();
      if (left <= 0)
        break;
      if (left < slice)
        slice = left;
    }
    aigc_engine_drive(L, 2, slice, 0, &hooks, &status);
    if (status != LUA_OK)
      wait_failed(L, r);
    if (aigc_hooks_changed(L, &hooks) && aigc_interrupt_probe(L, &hooks) != LUA_OK)
      wait_failed(L, r);
  }
}

/*
** Adds the function on top of the stack to the waiters of the request at
** ridx (popping it), and has the engine hold the request (someone expects
** to hear from it). Returns 0 when the request can no longer run its end
** (its client closed and let go of it): the function is then dropped.
** Allocates, so anything may happen meanwhile: the state is read after.
*/
static int add_waiter (lua_State *L, int ridx, aigc_request *r) {
  lua_Integer n;
  ridx = lua_absindex(L, ridx);
  if (lua_getiuservalue(L, ridx, AIGC_RQ_WAITERS) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, ridx, AIGC_RQ_WAITERS);
  }
  n = (lua_Integer)lua_rawlen(L, -1);
  lua_insert(L, -2);
  lua_rawseti(L, -2, n + 1);
  lua_pop(L, 1);
  lua_getiuservalue(L, ridx, AIGC_RQ_ENGINE);
  if (r->engine != NULL)
    aigc_engine_hold(L, lua_gettop(L), r, ridx, 1);   /* allocates */
  lua_pop(L, 1);
  if (r->engine == NULL) {   /* detached: no loop will ever run its end */
    lua_pushnil(L);
    lua_setiuservalue(L, ridx, AIGC_RQ_WAITERS);
    return 0;
  }
  if (aigc_terminal(r->state))
    aigc_engine_set_end(r->engine, r);   /* ended already: told on the next turn */
  return 1;
}

/* A task's waiter: the scheduler's resume(co, req) (upvalues 1 and 2). */
static int resume_task (lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, 1);
  lua_call(L, 2, 0);
  return 0;
}

/*
** Whether the running thread is a task of the scheduler of the engine at
** eidx (engine:set_scheduler: sched.tasks[co] is truthy) that can yield.
*/
static int in_task (lua_State *L, int eidx) {
  int yes;
  if (lua_getiuservalue(L, eidx, AIGC_EN_TASKS) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushthread(L);
  lua_rawget(L, -2);
  yes = lua_toboolean(L, -1) && aigc_isyieldable(L);
  lua_pop(L, 2);
  return yes;
}

/*
** wait() in a task (request at 1, engine at 2): registers the task as a
** waiter and yields the scheduler's token and the request; the scheduler's
** resume(co, req) runs from the loop when the request ends and resumes the
** task with req:result(), which wait() then returns.
*/
static int wait_in_task (lua_State *L, aigc_request *r) {
  lua_getiuservalue(L, 2, AIGC_EN_RESUME);
  lua_pushthread(L);
  lua_pushcclosure(L, resume_task, 2);
  if (!add_waiter(L, 1, r))   /* its client closed meanwhile: it is over */
    return push_result(L, 1, r);
  lua_settop(L, 2);
  lua_getiuservalue(L, 2, AIGC_EN_TOKEN);
  lua_pushvalue(L, 1);
  return lua_yield(L, 2);
}

/*
** req:wait([timeout]) -> res | nil, err | nil, nil (still pending after
** `timeout` seconds). Drives the engine (every request's callbacks run)
** until this request is over, then runs its own end if the loop has not
** yet (its on_done/on_error, its waiters): wait() is a driving call. In a
** task of the client's scheduler, wait() with no timeout yields instead
** (wait_in_task).
*/
static int req_wait (lua_State *L) {
  aigc_request *r = aigc_check_request(L, 1);
  lua_Number timeout = luaL_optnumber(L, 2, -1);
  aigc_engine *e;
  if (!lua_isnoneornil(L, 2))
    luaL_argcheck(L, timeout >= 0 && timeout == timeout, 2, "timeout must be a number >= 0");
  lua_settop(L, 1);
  if (!aigc_terminal(r->state) && r->in_callback)
    return luaL_error(L, "cannot wait for a request from inside its own callback");
  lua_getiuservalue(L, 1, AIGC_RQ_ENGINE);   /* index 2 */
  e = (aigc_engine *)lua_touserdata(L, 2);
  if (timeout < 0 && !aigc_terminal(r->state) && r->engine != NULL && in_task(L, 2))
    return wait_in_task(L, r);
  if (e != NULL && !e->dispatching && !e->stepping)
    aigc_interrupt_forget(L);   /* an outermost call */
  if (!aigc_terminal(r->state) && r->engine != NULL)
    wait_for(L, r, timeout < 0 ? -1 : aigc_now() + (double)timeout);
  if (r->end_pending && !r->in_callback && !r->delivering && r->engine != NULL)
    aigc_request_deliver_end(L, 2, 1);
  return push_result(L, 1, r);
}

/*
** req:pump([timeout]) -> status: one turn of the engine (waiting at most
** `timeout` seconds, default 1), for an iterator waiting on its next
** event. Like wait(), it may be called inside callbacks.
*/
static int req_pump (lua_State *L) {
  aigc_request *r = aigc_check_request(L, 1);
  lua_Number timeout = luaL_optnumber(L, 2, 1.0);
  luaL_argcheck(L, timeout >= 0 && timeout == timeout, 2, "timeout must be a number >= 0");
  lua_settop(L, 1);
  if (!aigc_terminal(r->state) && r->engine != NULL && !r->engine->closed) {
    aigc_hooks hooks;
    int status;
    if (r->in_callback)
      return luaL_error(L, "cannot wait for a request from inside its own callback");
    lua_getiuservalue(L, 1, AIGC_RQ_ENGINE);   /* index 2 */
    if (cannot_start(r))
      aigc_request_end_static(L, 2, r, AIGC_FAILED, "limit", "the request cannot start: every slot "
                              "of max_concurrency is held by a request whose callback is waiting "
                              "for this one (start it with chat_async instead)");
    aigc_hooks_snap(L, &hooks);
    aigc_engine_drive(L, 2, (double)timeout, 0, &hooks, &status);
    if (status != LUA_OK)
      wait_failed(L, r);
    if (aigc_hooks_changed(L, &hooks) && aigc_interrupt_probe(L, &hooks) != LUA_OK)
      wait_failed(L, r);
    lua_settop(L, 1);
  }
  lua_pushstring(L, state_names[r->state]);
  return 1;
}

/* req:_engine() -> the engine it belongs to (for the Lua scheduler). */
static int req_engine (lua_State *L) {
  aigc_check_request(L, 1);
  lua_getiuservalue(L, 1, AIGC_RQ_ENGINE);
  return 1;
}

/*
** req:cancel([why]) -> whether it was pending. Safe anywhere: in its own
** callbacks, in a finalizer. Its on_error (kind "canceled") and waiter run
** from the loop, not from here.
*/
static int req_cancel (lua_State *L) {
  aigc_request *r = aigc_check_request(L, 1);
  int pending, why_idx = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checkstring(L, 2);   /* (may allocate: a number becomes a string) */
    why_idx = 2;
  }
  lua_settop(L, 2);
  pending = !aigc_terminal(r->state);
  aigc_request_cancel(L, 1, "the request was canceled", why_idx);
  lua_pushboolean(L, pending);
  return 1;
}

/*
** req:_notify(fn): fn(req) is called once when the request is over, from
** the loop, after on_done/on_error (any number of them, in order). For the
** Lua layer (a Future tracking this request).
*/
static int req_notify (lua_State *L) {
  aigc_request *r = aigc_check_request(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  add_waiter(L, 1, r);
  return 0;
}

static int req_close (lua_State *L) {
  aigc_request *r = aigc_check_request(L, 1);
  lua_settop(L, 1);
  if (!aigc_terminal(r->state))
    aigc_request_cancel(L, 1, "the request was closed", 0);
  return 0;
}

/*
** __gc: the request is unreachable, so nobody can read its result or hear
** of its end (a request with callbacks or a waiter is held by the engine).
** If it was still pending it is canceled here, in C only (this may run at
** any allocation, even inside the engine's own loop: see
** aigc_engine_unlink).
*/
static int req_gc (lua_State *L) {
  aigc_request *r = (aigc_request *)luaL_checkudata(L, 1, AIGC_REQUEST_MT);
  if (r->engine != NULL)
    aigc_engine_unlink(r->engine, r);
  if (!aigc_terminal(r->state))
    r->state = AIGC_CANCELED;
  if (r->easy != NULL) {
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
  }
  r->delivering = 0;   /* cannot be: it is on the stack while delivered */
  free_transfer_memory(r);
  aigc_buf_free(&r->body);
  free(r->url);
  r->url = NULL;
  curl_slist_free_all(r->headers);
  r->headers = NULL;
  aigc_sse_free(&r->sse_parser);
  aigc_accum_free(&r->accum);
  aigc_json_arena_free(&r->arena);
  return 0;
}

static int req_tostring (lua_State *L) {
  aigc_request *r = aigc_check_request(L, 1);
  lua_pushfstring(L, "aigc.request (%s, %s%s) %p", state_names[r->state],
                  kind_names[r->kind], r->stream ? ", stream" : "", (void *)r);
  return 1;
}

static const luaL_Reg request_methods[] = {
  {"status", req_status},
  {"result", req_result},
  {"wait", req_wait},
  {"cancel", req_cancel},
  {"pump", req_pump},
  {"_notify", req_notify},
  {"_engine", req_engine},
  {NULL, NULL}
};

static const luaL_Reg request_meta[] = {
  {"__index", NULL},
  {"__gc", req_gc},
  {"__close", req_close},
  {"__tostring", req_tostring},
  {NULL, NULL}
};

void aigc_request_open (lua_State *L) {
  luaL_newmetatable(L, AIGC_REQUEST_MT);
  luaL_setfuncs(L, request_meta, 0);
  luaL_newlibtable(L, request_methods);
  luaL_setfuncs(L, request_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* }====================================================== */
