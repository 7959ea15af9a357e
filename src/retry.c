/*
** retry.c — whether and when a request's attempt is sent again (retry.h):
** the retry policy, and the three ways an attempt starts again. Each only
** sets retry_at: transfer.c's timer (aigc_transfer_tick) begins the attempt
** when it is due.
*/
#include <math.h>
#include <string.h>
#include <strings.h>

#include "retry.h"
#include "util.h"

/*
** The attempt's end stands: a new one begins at `at` (aigc_transfer_tick).
** Until then no idle limit runs, the call's deadline counts again
** (transfer_done = 0), and the reply of the attempt that ended is dropped.
*/
static void send_again_at (aigc_request *r, double at) {
  r->retry_at = at;
  r->idle_deadline = 0;
  r->transfer_done = 0;
  aigc_buf_clear(&r->resp);
  aigc_transfer_timers_changed(r);
}

/*
** The server's delay, when 0 < d <= 120 s; none (-1: do not retry) when it
** asks for longer; otherwise the SDKs' backoff min(0.5 * 2^n, 8) *
** (1 - 0.25 * rand), n = retries taken.
*/
double aigc_retry_delay (aigc_request *r) {
  double d = aigc_headers_retry_after(&r->hdrs);
  if (d == d) {
    if (d > 0 && d <= AIGC_MAX_RETRY_AFTER)
      return d;
    if (d > AIGC_MAX_RETRY_AFTER)
      return -1;
  }
  d = 0.5 * pow(2.0, (double)r->retries);
  if (d > 8.0)
    d = 8.0;
  return d * (1.0 - 0.25 * aigc_roster_random(r->roster));
}

int aigc_retry_status_retryable (const aigc_request *r, long status) {
  int says = aigc_headers_should_retry(&r->hdrs);
  if (says >= 0)
    return says;
  return status == 408 || status == 409 || status == 429 || status >= 500;
}

void aigc_retry_schedule (aigc_request *r, double delay) {
  r->retries++;
  send_again_at(r, aigc_now() + (delay > 0 ? delay : 0.000001));
}

/*
** A reused keep-alive connection that answers with something that is not
** HTTP at all was carrying bytes from before this request (a server that
** sent more than its Content-Length; libcurl before 8.x reuses such a
** connection). The connection was at fault, not the request: start again
** once on a new connection, as libcurl does for a reused connection found
** dead.
*/
int aigc_retry_stale (const aigc_request *r) {
  long connects = 1;
  return (r->curl_code == CURLE_UNSUPPORTED_PROTOCOL || r->curl_code == CURLE_WEIRD_SERVER_REPLY)
         && r->status == 0 && !r->delivered && r->stale == 0 && r->easy != NULL
         && r->roster != NULL && !r->roster->closed
         && curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK
         && connects == 0;
}

/*
** A stream is sent with stream_options = {include_usage = true} unless the
** caller set the field (for the usage chunk), but some servers refuse a
** field they do not know: vLLM before 0.5, Fireworks and Databricks' gateway
** answered 400 "Extra inputs are not permitted" naming it, which made every
** stream fail. A 400 or 422 naming stream_options to a body holding the
** default one is answered by sending the body again without it, once, not
** counted as a retry; the client sends it no more (its streams then carry
** no usage).
*/
static int names_stream_options (const aigc_buf *b) {
  static const char field[] = "stream_options";
  size_t n = sizeof field - 1, i;
  for (i = 0; i + n <= b->len; i++)
    if (b->data[i] == 's' && memcmp(b->data + i, field, n) == 0)
      return 1;
  return 0;
}

int aigc_retry_refused_stream_options (const aigc_request *r) {
  return r->default_so_len > 0 && (r->status == 400 || r->status == 422) && r->curl_code == CURLE_OK
         && !r->delivered && r->roster != NULL && !r->roster->closed && r->easy != NULL
         && names_stream_options(&r->resp);
}

void aigc_retry_resend_without_stream_options (aigc_request *r) {
  size_t len = r->body.len, cut = r->default_so_len;
  /* the body is {...,"stream_options":{"include_usage":true}}: keep the '}' */
  memmove(r->body.data + len - 1 - cut, r->body.data + len - 1, 2);   /* '}' and the NUL */
  r->body.len = len - cut;
  r->default_so_len = 0;
  /* (set per request, not per attempt: the handle still has the old size) */
  curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body.len);
  r->roster->config.no_stream_options = 1;
  send_again_at(r, aigc_now() + 0.000001);
}

void aigc_retry_restart_fresh (aigc_request *r) {
  r->stale++;
  curl_easy_setopt(r->easy, CURLOPT_FRESH_CONNECT, 1L);
  send_again_at(r, aigc_now() + 0.000001);
}

/*
** A 417 to a request whose headers asked "Expect: 100-continue" (a
** caller's header: aigc's own "Expect:" keeps libcurl from adding one):
** the server, or a proxy, refuses the expectation, and the client should
** repeat the request without it (RFC 9110 10.1.1). libcurl does so only
** for an Expect it added itself. Sent again once, at once, unless a
** reader's bytes are gone (libcurl waits for the 100 before it reads the
** body: none are, unless the server was slower than libcurl's 1 s wait).
*/
static int asks_continue (const char *line) {
  if (strncasecmp(line, "expect:", 7) != 0)
    return 0;
  for (line += 7; *line == ' ' || *line == '\t'; line++)
    ;
  return strncasecmp(line, "100-continue", 12) == 0;
}

/* The header list the attempt was sent with (transfer.c setup_easy's). */
static const struct curl_slist *sent_headers (const aigc_request *r) {
  const aigc_config *c = &r->roster->config;
  return r->headers ? r->headers : (r->stream && c->stream_headers) ? c->stream_headers : c->headers;
}

/* A 417 to an attempt whose headers asked "Expect: 100-continue". */
static int refused_continue (const aigc_request *r) {
  const struct curl_slist *p;
  if (r->status != 417 || r->curl_code != CURLE_OK || r->expect_resent || r->roster == NULL)
    return 0;
  for (p = sent_headers(r); p != NULL; p = p->next)
    if (asks_continue(p->data))
      return 1;
  return 0;
}

int aigc_retry_refused_expect (const aigc_request *r) {
  return !r->delivered && r->xb.fed == 0 && r->easy != NULL && refused_continue(r) && !r->roster->closed;
}

int aigc_retry_refused_expect_late (const aigc_request *r) {
  return r->xb.fed > 0 && refused_continue(r);
}

int aigc_retry_resend_without_expect (aigc_request *r) {
  const struct curl_slist *p;
  struct curl_slist *list = NULL, *next;
  for (p = sent_headers(r); p != NULL; p = p->next) {
    if (strncasecmp(p->data, "expect:", 7) == 0)
      continue;
    if ((next = curl_slist_append(list, p->data)) == NULL)
      break;
    list = next;
  }
  next = p == NULL ? curl_slist_append(list, "Expect:") : NULL;
  if (next == NULL || curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, next) != CURLE_OK) {
    curl_slist_free_all(next != NULL ? next : list);
    return -1;
  }
  curl_slist_free_all(r->headers);   /* (the call's own, if it had some: libcurl holds the new list) */
  r->headers = next;
  r->easy_memo.headers = next;
  r->easy_memo.have_headers = 1;
  r->expect_resent = 1;
  send_again_at(r, aigc_now() + 0.000001);
  return 0;
}
