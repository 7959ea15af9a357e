/*
** fuzz_sse.c — libFuzzer harness for the incremental SSE parser.
**
** The input is an event stream. The oracle: the stream gives the same
** events (type, data, id, has_data, in order), the same status and the same
** final aigc_sse_pending
**   - fed whole, byte by byte, cut at three offsets taken from the input's
**     first bytes, and in pieces whose sizes come from the input's bytes;
**   - through a fresh parser and through one reused after aigc_sse_reset;
**   - as parsed by a deliberately naive reference parser below, which sees
**     the whole stream at once and shares no code with src/sse.c;
** and each of these with no bound, with a small max_event (from the input),
** and with a handler that stops after a few events. After the first status
** that is not OK the rest of the pieces are still fed (the results are not
** compared) to show that doing so is safe. Any difference aborts; ASan,
** UBSan and LeakSanitizer catch the rest.
**
**   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
**     -std=c99 -D_POSIX_C_SOURCE=200809L -Isrc -o fuzz_sse \
**     spec/fuzz/fuzz_sse.c src/buf.c src/sse.c
**   ./fuzz_sse corpus/ spec/fuzz/seeds/fuzz_sse/
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);


/* {{{ an event log: every event serialized, length-prefixed */

typedef struct evlog {
  aigc_buf b;
  size_t n;           /* events logged */
  size_t stop_at;     /* the handler returns 1 once n reaches it; 0 = never */
  int frozen;         /* outcome taken: feeds go on, nothing is logged */
} evlog;

static void die (const char *what) {
  fprintf(stderr, "fuzz_sse: %s\n", what);
  abort();
}

static void log_bytes (evlog *l, const void *p, size_t n) {
  if (aigc_buf_append(&l->b, p, n) != 0)
    die("out of memory");
}

static void log_str (evlog *l, const char *s, size_t n) {
  log_bytes(l, &n, sizeof n);
  log_bytes(l, s, n);
}

static int log_event (evlog *l, const char *type, size_t type_len,
                      const char *data, size_t data_len, const char *id,
                      size_t id_len, int has_data) {
  char h = (char)(has_data ? 'D' : 'E');
  if (l->frozen)
    return 1;
  log_bytes(l, &h, 1);
  log_str(l, type, type_len);
  log_str(l, data, data_len);
  log_str(l, id, id_len);
  l->n++;
  return l->stop_at != 0 && l->n >= l->stop_at;
}

static int log_handler (void *ud, const aigc_sse_event *e) {
  if (e->type == NULL || e->data == NULL || e->id == NULL ||
      e->type[e->type_len] != '\0' ||
      e->id[e->id_len] != '\0' || (e->has_data != 0 && e->has_data != 1))
    die("ill-formed event");
  return log_event((evlog *)ud, e->type, e->type_len, e->data, e->data_len,
                   e->id, e->id_len, e->has_data);
}

typedef struct outcome {
  evlog log;
  int status;         /* the first status that is not OK, or OK */
  int pending;
} outcome;

static void outcome_init (outcome *o, size_t stop_at) {
  static const aigc_buf empty = AIGC_BUF_INIT;
  o->log.b = empty;
  o->log.n = 0;
  o->log.stop_at = stop_at;
  o->log.frozen = 0;
  o->status = AIGC_SSE_OK;
  o->pending = 0;
}

static void same (const outcome *want, const outcome *got, const char *how) {
  if (want->status != got->status) {
    fprintf(stderr, "%s: status %d, want %d\n", how, got->status, want->status);
    die("status differs");
  }
  if (want->log.n != got->log.n || want->log.b.len != got->log.b.len ||
      (want->log.b.len > 0 &&
       memcmp(want->log.b.data, got->log.b.data, want->log.b.len) != 0)) {
    fprintf(stderr, "%s: %zu events, want %zu\n", how, got->log.n, want->log.n);
    die("events differ");
  }
  /* after STOPPED the rest of the feed is dropped: where it ends varies */
  if (want->status != AIGC_SSE_STOPPED && want->pending != got->pending) {
    fprintf(stderr, "%s: pending %d, want %d\n", how, got->pending, want->pending);
    die("pending differs");
  }
}

/* }}} */


/* {{{ the reference: the rules of sse.h, read literally, on the whole stream */

typedef struct ref {
  aigc_buf data, type, id;
  int seen_data, seen_type;
} ref;

static void ref_put (aigc_buf *b, const char *s, size_t n) {
  if (aigc_buf_append(b, s, n) != 0)
    die("out of memory");
}

/* Returns 1 when the handler asked to stop. */
static int ref_line (ref *r, const char *s, size_t n, evlog *l) {
  size_t i, name, vstart;
  if (n == 0) {
    int stop = 0;
    if (r->seen_data || r->seen_type)
      stop = log_event(l, r->type.len ? r->type.data : "", r->type.len,
                       r->data.len ? r->data.data : "", r->data.len,
                       r->id.len ? r->id.data : "", r->id.len, r->seen_data);
    aigc_buf_clear(&r->data);
    aigc_buf_clear(&r->type);
    r->seen_data = r->seen_type = 0;
    return stop;
  }
  for (i = 0; i < n && s[i] != ':'; i++)
    ;
  if (i == 0)
    return 0;                          /* a comment */
  name = i;
  vstart = i < n ? i + 1 : n;
  if (vstart < n && s[vstart] == ' ')
    vstart++;
  if (name == 4 && memcmp(s, "data", 4) == 0) {
    if (r->seen_data)
      ref_put(&r->data, "\n", 1);
    ref_put(&r->data, s + vstart, n - vstart);
    r->seen_data = 1;
  }
  else if (name == 5 && memcmp(s, "event", 5) == 0) {
    aigc_buf_clear(&r->type);
    ref_put(&r->type, s + vstart, n - vstart);
    r->seen_type = 1;
  }
  else if (name == 5 && memcmp(s, "error", 5) == 0) {   /* llama.cpp's (sse.h) */
    aigc_buf_clear(&r->type);
    ref_put(&r->type, "error", 5);
    r->seen_type = 1;
    if (r->seen_data)
      ref_put(&r->data, "\n", 1);
    ref_put(&r->data, s + vstart, n - vstart);
    r->seen_data = 1;
  }
  else if (name == 2 && memcmp(s, "id", 2) == 0) {
    for (i = vstart; i < n && s[i] != '\0'; i++)
      ;
    if (i == n) {
      aigc_buf_clear(&r->id);
      ref_put(&r->id, s + vstart, n - vstart);
    }
  }
  return 0;
}

static void ref_parse (outcome *o, const char *s, size_t n, size_t max_event) {
  static const aigc_buf empty = AIGC_BUF_INIT;
  ref r;
  size_t i = 0;
  int cut = 0;          /* the stream ends inside a line */
  r.data = r.type = r.id = empty;
  r.seen_data = r.seen_type = 0;
  if (n > 0 && n < 3 && memcmp(s, "\xEF\xBB\xBF", n) == 0) {
    o->pending = 1;     /* maybe a BOM, maybe not: undecided, held */
    return;
  }
  if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
    i = 3;
  while (i < n) {
    size_t j = i;
    while (j < n && s[j] != '\n' && s[j] != '\r')
      j++;
    if (max_event != 0 && (j - i) + r.data.len + r.type.len > max_event) {
      o->status = AIGC_SSE_TOOBIG;
      break;
    }
    if (j == n) {
      cut = 1;
      break;
    }
    if (ref_line(&r, s + i, j - i, &o->log)) {
      o->status = AIGC_SSE_STOPPED;
      break;
    }
    i = j + 1;
    if (s[j] == '\r' && i < n && s[i] == '\n')
      i++;
  }
  if (o->status == AIGC_SSE_OK)
    o->pending = cut || r.seen_data || r.seen_type;
  aigc_buf_free(&r.data);
  aigc_buf_free(&r.type);
  aigc_buf_free(&r.id);
}

/* }}} */


/* {{{ the parser under test, fed in pieces */

/*
** Feed s[0..n) cut before each offset in cuts (ascending, <= n) through p.
** The outcome is taken at the first status that is not OK; the remaining
** pieces are then fed anyway, unlogged.
*/
static void feed_cuts (outcome *o, aigc_sse *p, const char *s, size_t n,
                       const size_t *cuts, size_t ncuts) {
  size_t i, at = 0;
  for (i = 0; i <= ncuts; i++) {
    size_t to = i < ncuts ? cuts[i] : n;
    int st = aigc_sse_feed(p, s + at, to - at, log_handler, &o->log);
    if (st != AIGC_SSE_OK && st != AIGC_SSE_TOOBIG && st != AIGC_SSE_STOPPED)
      die("unexpected status");
    if (!o->log.frozen && st != AIGC_SSE_OK) {
      o->status = st;
      o->pending = aigc_sse_pending(p);
      o->log.frozen = 1;
    }
    at = to;
  }
  if (!o->log.frozen)
    o->pending = aigc_sse_pending(p);
}

static void run_cuts (outcome *o, const char *s, size_t n, const size_t *cuts,
                      size_t ncuts, size_t max_event, size_t stop_at) {
  aigc_sse p;
  outcome_init(o, stop_at);
  aigc_sse_init(&p, max_event);
  feed_cuts(o, &p, s, n, cuts, ncuts);
  aigc_sse_free(&p);
}

/* }}} */


static void check_config (const char *s, size_t n, size_t max_event,
                          size_t stop_at, const size_t *cuts3,
                          size_t *scratch) {
  outcome want, got;
  aigc_sse p;
  size_t i, k;

  run_cuts(&want, s, n, NULL, 0, max_event, stop_at);        /* whole */

  outcome_init(&got, stop_at);
  ref_parse(&got, s, n, max_event);
  same(&want, &got, "reference");
  aigc_buf_free(&got.log.b);

  for (i = 0; i < n; i++)                                    /* byte by byte */
    scratch[i] = i + 1;
  run_cuts(&got, s, n, scratch, n > 0 ? n - 1 : 0, max_event, stop_at);
  same(&want, &got, "byte by byte");
  aigc_buf_free(&got.log.b);

  run_cuts(&got, s, n, cuts3, 3, max_event, stop_at);        /* 3 cuts */
  same(&want, &got, "three cuts");
  aigc_buf_free(&got.log.b);

  for (i = 0, k = 0; n > 0; k++) {             /* pieces sized by the input */
    i += 1 + (unsigned char)s[k % n] % 23;
    if (i >= n)
      break;
    scratch[k] = i;
  }
  run_cuts(&got, s, n, scratch, k, max_event, stop_at);
  same(&want, &got, "input-sized pieces");
  aigc_buf_free(&got.log.b);

  /* a parser that already parsed this stream, then reset, is as new */
  aigc_sse_init(&p, max_event);
  outcome_init(&got, stop_at);
  feed_cuts(&got, &p, s, n, cuts3, 3);
  aigc_buf_free(&got.log.b);
  aigc_sse_reset(&p);
  if (aigc_sse_pending(&p))
    die("pending after reset");
  outcome_init(&got, stop_at);
  feed_cuts(&got, &p, s, n, NULL, 0);
  same(&want, &got, "after reset");
  aigc_buf_free(&got.log.b);
  aigc_sse_free(&p);

  aigc_buf_free(&want.log.b);
}


int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  size_t cuts3[3], *scratch, i, small, stop;
  unsigned char b0, b1, b2, b3;
  if (size > ((size_t)1 << 20))
    return 0;
  b0 = size > 0 ? data[0] : 0;
  b1 = size > 1 ? data[1] : 0;
  b2 = size > 2 ? data[2] : 0;
  b3 = size > 3 ? data[3] : 0;
  /* three cut offsets from the first bytes, ascending */
  cuts3[0] = ((size_t)b0 * 256 + b1) % (size + 1);
  cuts3[1] = ((size_t)b1 * 256 + b2) % (size + 1);
  cuts3[2] = ((size_t)b2 * 256 + b3) % (size + 1);
  for (i = 1; i < 3; i++) {
    size_t j = i, t = cuts3[i];
    for (; j > 0 && cuts3[j - 1] > t; j--)
      cuts3[j] = cuts3[j - 1];
    cuts3[j] = t;
  }
  small = 1 + (size_t)(b3 % 64);
  stop = 1 + (size_t)(b0 % 4);
  scratch = (size_t *)malloc((size + 1) * sizeof *scratch);
  if (scratch == NULL)
    die("out of memory");
  check_config(s, size, 0, 0, cuts3, scratch);
  check_config(s, size, small, 0, cuts3, scratch);
  check_config(s, size, 0, stop, cuts3, scratch);
  check_config(s, size, small, stop, cuts3, scratch);
  free(scratch);
  return 0;
}
