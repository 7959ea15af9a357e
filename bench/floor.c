/*
** floor.c — the practical floor: the least a C program on libcurl can do
** for the same work as every other client in the benchmark (build the
** request, send it, find choices[0].message.content and check it).
**
**   floor seq    URL N EXPECT_FILE        one reused easy handle
**   floor multi  URL N EXPECT_FILE K      curl-multi, K in flight
**   floor stream URL N EXPECT_FILE        SSE split in the write callback
**   floor idle   -   0 -           K      K requests sent to a server that
**                                         accepts and never answers: the
**                                         memory of K waiting (rss_kb)
**
** The request body is built with snprintf, the content found with a
** minimal scanner (no JSON parser): nothing a real client could skip.
** Prints one line "ok n=... wall=... cpu=... rss_kb=... [chunks=...]"
** (seconds; CPU is user+sys of the timed part only, after a warm-up).
*/
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <curl/curl.h>

#define WARMUP 50

static char expect[65536];
static size_t expect_len;

static double now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu (void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6
       + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static long peak_rss_kb (void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static void die (const char *msg) {
  fprintf(stderr, "floor: %s\n", msg);
  exit(1);
}

static void read_expect (const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    die("cannot open the expected-content file");
  expect_len = fread(expect, 1, sizeof expect - 1, f);
  fclose(f);
}

/* The request, as every client sends it (two messages, a few settings). */
static int build_body (char *buf, size_t size, int i, int stream) {
  return snprintf(buf, size,
    "{\"model\":\"gpt-4o-mini\",\"messages\":["
    "{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},"
    "{\"role\":\"user\",\"content\":\"Say hello to request %d.\"}],"
    "\"temperature\":0.7,\"max_tokens\":128%s}",
    i, stream ? ",\"stream\":true" : "");
}

/* A growable response buffer. */
typedef struct sink {
  char *data;
  size_t len, cap;
} sink;

static size_t on_body (char *ptr, size_t size, size_t nmemb, void *ud) {
  sink *s = (sink *)ud;
  size_t n = size * nmemb;
  if (s->len + n + 1 > s->cap) {
    size_t cap = s->cap ? s->cap : 4096;
    while (cap < s->len + n + 1)
      cap *= 2;
    s->data = (char *)realloc(s->data, cap);
    if (s->data == NULL)
      return 0;
    s->cap = cap;
  }
  memcpy(s->data + s->len, ptr, n);
  s->len += n;
  s->data[s->len] = '\0';
  return n;
}

/* The minimal scanner: the first "content":"..." string, raw (escapes kept). */
static const char *find_content (const char *p, const char *end, size_t *len) {
  static const char key[] = "\"content\":\"";
  const char *s, *q;
  size_t klen = sizeof key - 1;
  for (s = p; s + klen <= end; s++) {
    s = (const char *)memchr(s, '"', (size_t)(end - s));
    if (s == NULL || s + klen > end)
      return NULL;
    if (memcmp(s, key, klen) == 0)
      break;
  }
  if (s == NULL || s + klen > end)
    return NULL;
  s += klen;
  for (q = s; q < end && *q != '"'; q++)
    if (*q == '\\')
      q++;
  if (q >= end)
    return NULL;
  *len = (size_t)(q - s);
  return s;
}

static void check (const sink *s) {
  size_t len;
  const char *c = find_content(s->data, s->data + s->len, &len);
  if (c == NULL || len != expect_len || memcmp(c, expect, len) != 0)
    die("unexpected response content");
}

/*
** The same request headers as aigc sends, in its order (a User-Agent of
** the same length, Accept-Encoding from CURLOPT_ACCEPT_ENCODING): the
** floor does the same work on the wire, libcurl formats the same bytes.
*/
static struct curl_slist *headers (int stream) {
  struct curl_slist *h = NULL;
  h = curl_slist_append(h, stream ? "Accept: text/event-stream" : "Accept: application/json");
  h = curl_slist_append(h, "Content-Type: application/json");
  h = curl_slist_append(h, "User-Agent: floor/0.1.0 Lua/5.4 libcurl/" LIBCURL_VERSION);
  h = curl_slist_append(h, "Authorization: Bearer sk-bench");
  h = curl_slist_append(h, "Expect:");
  return h;
}

/* What every handle of the floor sets once, as aigc does for its own. */
static void common_options (CURL *h, struct curl_slist *hdr) {
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
}

static void report (int n, double wall, double cpu_s, long chunks) {
  printf("ok n=%d wall=%.6f cpu=%.6f rss_kb=%ld", n, wall, cpu_s, peak_rss_kb());
  if (chunks >= 0)
    printf(" chunks=%ld", chunks);
  printf("\n");
}

/* {====== one reused easy handle ====== */

static void run_seq (const char *url, int n) {
  CURL *h = curl_easy_init();
  struct curl_slist *hdr = headers(0);
  sink s = {0};
  char body[512];
  int i, total = WARMUP + n;
  double t0 = 0, c0 = 0;
  curl_easy_setopt(h, CURLOPT_URL, url);
  common_options(h, hdr);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
  for (i = 0; i < total; i++) {
    int blen;
    long status = 0;
    if (i == WARMUP) {
      t0 = now();
      c0 = cpu();
    }
    blen = build_body(body, sizeof body, i, 0);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)blen);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    s.len = 0;
    if (curl_easy_perform(h) != CURLE_OK)
      die("transfer failed");
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200)
      die("status is not 200");
    check(&s);
  }
  report(n, now() - t0, cpu() - c0, -1);
  curl_easy_cleanup(h);
  curl_slist_free_all(hdr);
  free(s.data);
}

/* }====== */

/* {====== curl-multi, K in flight ====== */

typedef struct slot {
  CURL *h;
  sink s;
  char body[512];
} slot;

static void start_slot (CURLM *m, slot *sl, int i) {
  int blen = build_body(sl->body, sizeof sl->body, i, 0);
  curl_easy_setopt(sl->h, CURLOPT_POSTFIELDSIZE, (long)blen);
  curl_easy_setopt(sl->h, CURLOPT_POSTFIELDS, sl->body);
  sl->s.len = 0;
  curl_multi_add_handle(m, sl->h);
}

static void run_multi (const char *url, int n, int k) {
  CURLM *m = curl_multi_init();
  struct curl_slist *hdr = headers(0);
  slot *slots = (slot *)calloc((size_t)k, sizeof *slots);
  slot **fin = (slot **)calloc((size_t)k, sizeof *fin);   /* the transfers that ended in one turn */
  int i, started = 0, done = 0, running = 0, warm = 2 * k, total = n + warm;
  double t0 = 0, c0 = 0;
  if (slots == NULL || fin == NULL)
    die("out of memory");
  curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
  for (i = 0; i < k; i++) {
    CURL *h = curl_easy_init();
    slots[i].h = h;
    curl_easy_setopt(h, CURLOPT_URL, url);
    common_options(h, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &slots[i].s);
    curl_easy_setopt(h, CURLOPT_PRIVATE, (void *)&slots[i]);
    start_slot(m, &slots[i], started++);
  }
  while (done < total) {
    CURLMsg *msg;
    int left, nfin = 0, f;
    curl_multi_perform(m, &running);
    /* Every message read before any handle is removed: libcurl (7.88)
       curl_multi_remove_handle walks the queue of unread messages, so
       removing each at once was quadratic in the transfers ending in one
       turn (bench/README, 2026-12-06: 41.6 -> 30.9 us at K = 4,096). */
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
      if (msg->msg != CURLMSG_DONE)
        continue;
      if (msg->data.result != CURLE_OK)
        die("transfer failed");
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&fin[nfin++]);
    }
    for (f = 0; f < nfin; f++) {
      slot *sl = fin[f];
      long status = 0;
      curl_easy_getinfo(sl->h, CURLINFO_RESPONSE_CODE, &status);
      curl_multi_remove_handle(m, sl->h);
      if (status != 200)
        die("status is not 200");
      check(&sl->s);
      done++;
      if (done == warm) {
        t0 = now();
        c0 = cpu();
      }
      if (started < total)
        start_slot(m, sl, started++);
    }
    if (done < total)
      curl_multi_poll(m, NULL, 0, 1000, NULL);
  }
  report(n, now() - t0, cpu() - c0, -1);
  for (i = 0; i < k; i++) {
    curl_easy_cleanup(slots[i].h);
    free(slots[i].s.data);
  }
  free(slots);
  free(fin);
  curl_multi_cleanup(m);
  curl_slist_free_all(hdr);
}

/* }====== */

/* {====== streaming: SSE split in the write callback ====== */

typedef struct sse {
  char line[65536];      /* the line being assembled across writes */
  size_t llen;
  char text[65536];      /* the deltas so far */
  size_t tlen;
  long chunks;
  int done;
} sse;

static void sse_line (sse *st, const char *p, size_t n) {
  const char *c;
  size_t len;
  if (n > 0 && p[n - 1] == '\r')
    n--;
  if (n < 6 || memcmp(p, "data: ", 6) != 0)
    return;   /* blank line, comment, other fields */
  p += 6;
  n -= 6;
  if (n == 6 && memcmp(p, "[DONE]", 6) == 0) {
    st->done = 1;
    return;
  }
  st->chunks++;
  c = find_content(p, p + n, &len);
  if (c != NULL && st->tlen + len < sizeof st->text) {
    memcpy(st->text + st->tlen, c, len);
    st->tlen += len;
  }
}

static size_t on_sse (char *ptr, size_t size, size_t nmemb, void *ud) {
  sse *st = (sse *)ud;
  size_t n = size * nmemb;
  const char *p = ptr, *end = ptr + n;
  while (p < end) {
    const char *nl = (const char *)memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL) {   /* keep the partial line for the next write */
      size_t rest = (size_t)(end - p);
      if (st->llen + rest > sizeof st->line)
        return 0;
      memcpy(st->line + st->llen, p, rest);
      st->llen += rest;
      break;
    }
    if (st->llen > 0) {
      size_t part = (size_t)(nl - p);
      if (st->llen + part > sizeof st->line)
        return 0;
      memcpy(st->line + st->llen, p, part);
      sse_line(st, st->line, st->llen + part);
      st->llen = 0;
    }
    else
      sse_line(st, p, (size_t)(nl - p));
    p = nl + 1;
  }
  return n;
}

static void run_stream (const char *url, int n) {
  CURL *h = curl_easy_init();
  struct curl_slist *hdr = headers(1);
  static sse st;
  char body[512];
  int i, total = n + WARMUP / 10;
  long chunks = 0;
  double t0 = 0, c0 = 0;
  curl_easy_setopt(h, CURLOPT_URL, url);
  common_options(h, hdr);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_sse);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &st);
  for (i = 0; i < total; i++) {
    int blen;
    if (i == WARMUP / 10) {
      t0 = now();
      c0 = cpu();
      chunks = 0;
    }
    blen = build_body(body, sizeof body, i, 1);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)blen);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    st.llen = st.tlen = 0;
    st.chunks = 0;
    st.done = 0;
    if (curl_easy_perform(h) != CURLE_OK)
      die("transfer failed");
    if (!st.done || st.tlen != expect_len || memcmp(st.text, expect, expect_len) != 0)
      die("unexpected stream content");
    chunks += st.chunks;
  }
  report(n, now() - t0, cpu() - c0, chunks);
  curl_easy_cleanup(h);
  curl_slist_free_all(hdr);
}

/* }====== */

/* {====== K waiting: libcurl's memory per request in flight ====== */

/*
** K requests sent to a listening socket that nobody accepts from (the
** kernel's backlog completes the connections): the state aigc's `idle`
** mode measures, for libcurl alone. Reports the peak RSS after a second of
** driving (every connection made, every request sent).
*/
static void run_idle (int k) {
  CURLM *m = curl_multi_init();
  struct curl_slist *hdr = headers(0);
  slot *slots = (slot *)calloc((size_t)k, sizeof *slots);
  struct sockaddr_in a;
  socklen_t alen = sizeof a;
  char url[64];
  int i, running = 0, fd = socket(AF_INET, SOCK_STREAM, 0);
  double t0;
  if (slots == NULL || fd < 0)
    die("out of memory or sockets");
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, k + 64) != 0
      || getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
    die("cannot listen");
  snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", ntohs(a.sin_port));
  curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
  for (i = 0; i < k; i++) {
    CURL *h = curl_easy_init();
    slots[i].h = h;
    curl_easy_setopt(h, CURLOPT_URL, url);
    common_options(h, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &slots[i].s);
    start_slot(m, &slots[i], i);
  }
  t0 = now();
  while (now() - t0 < 1.0) {
    curl_multi_perform(m, &running);
    curl_multi_poll(m, NULL, 0, 10, NULL);
  }
  if (running != k)
    die("not every request is waiting");
  report(k, now() - t0, 0, -1);
  close(fd);
}

/* }====== */

int main (int argc, char **argv) {
  int n;
  if (argc < 5)
    die("usage: floor seq|multi|stream URL N EXPECT_FILE [K]");
  n = atoi(argv[3]);
  if (strcmp(argv[4], "-") != 0)
    read_expect(argv[4]);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (strcmp(argv[1], "seq") == 0)
    run_seq(argv[2], n);
  else if (strcmp(argv[1], "multi") == 0)
    run_multi(argv[2], n, argc > 5 ? atoi(argv[5]) : 64);
  else if (strcmp(argv[1], "stream") == 0)
    run_stream(argv[2], n);
  else if (strcmp(argv[1], "idle") == 0)
    run_idle(argc > 5 ? atoi(argv[5]) : 64);
  else
    die("unknown mode");
  curl_global_cleanup();
  return 0;
}
