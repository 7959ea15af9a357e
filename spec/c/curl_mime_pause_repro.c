/*
** curl_mime_pause_repro.c — why an upload part fed by a function stalled on
** libcurl 7.88 (issue 15), in 80 lines without aigc. Not part of ctest (it
** needs a server); build and run by hand:
**
**   lua5.4 lua/aigc/devserver.lua --port 8089 --quiet &
**   cc -o /tmp/repro spec/c/curl_mime_pause_repro.c -lcurl
**   /tmp/repro http://127.0.0.1:8089/v1/files        # stalls: 1 read call, 10 s
**   /tmp/repro http://127.0.0.1:8089/v1/files fix    # 200: 50 pieces, ms
**
** The pattern is aigc's: multi_socket API, a MIME part from
** curl_mime_data_cb whose read callback returns CURL_READFUNC_PAUSE when
** its buffer is empty; the loop refills the buffer after socket_action
** returns and calls curl_easy_pause(CURLPAUSE_CONT).
**
** The cause (lib/mime.c, lib/easy.c of 7.88.1): the part's first read
** comes in the same Curl_mime_read call as the boundary and the part's
** headers. readback_part() returns those bytes (cursize > 0), so libcurl
** never sees the pause (KEEP_SEND_PAUSE stays off), but the part keeps
** lastreadstatus = CURL_READFUNC_PAUSE. curl_easy_pause(CONT) then finds
** "no change" and returns before Curl_mime_unpause(); every later read
** returns the stale PAUSE without calling the callback: stalled for good.
** The fix ("fix" here, resume_upload in src/request.c): pause SEND, then
** CONT — a real change of state, so Curl_mime_unpause() runs.
*/
#include <curl/curl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

static struct pollfd fds[8];
static int nfds, wanted, calls, given, eof;
static long deadline_ms = -1;
static char feed[4096];
static size_t have, pos;

static long now_ms (void) { struct timeval t; gettimeofday(&t, NULL); return t.tv_sec * 1000L + t.tv_usec / 1000; }

static int on_socket (CURL *e, curl_socket_t fd, int what, void *u, void *s) {
  int i;
  (void)e; (void)u; (void)s;
  for (i = 0; i < nfds && fds[i].fd != fd; i++) {}
  if (what == CURL_POLL_REMOVE) { if (i < nfds) fds[i] = fds[--nfds]; return 0; }
  if (i == nfds) nfds++;
  fds[i].fd = fd;
  fds[i].events = (short)((what & CURL_POLL_IN ? POLLIN : 0) | (what & CURL_POLL_OUT ? POLLOUT : 0));
  return 0;
}

static int on_timer (CURLM *m, long ms, void *u) { (void)m; (void)u; deadline_ms = ms < 0 ? -1 : now_ms() + ms; return 0; }

static size_t on_read (char *buf, size_t size, size_t n, void *arg) {
  size_t want = size * n;
  (void)arg; calls++;
  if (pos == have) { if (eof) return 0; wanted = 1; return CURL_READFUNC_PAUSE; }
  if (want > have - pos) want = have - pos;
  memcpy(buf, feed + pos, want); pos += want;
  return want;
}

int main (int argc, char **argv) {
  CURLM *m = curl_multi_init(); CURL *e = curl_easy_init();
  curl_mime *mime = curl_mime_init(e); curl_mimepart *p = curl_mime_addpart(mime);
  int running = 1, i, left, fix = argc > 2 && strcmp(argv[2], "fix") == 0;
  long t0 = now_ms(), code = 0;
  CURLMsg *msg;
  if (argc < 2) { fprintf(stderr, "usage: %s URL [fix]\n", argv[0]); return 2; }
  curl_mime_name(p, "file"); curl_mime_filename(p, "a.jsonl");
  curl_mime_data_cb(p, -1, on_read, NULL, NULL, NULL);
  p = curl_mime_addpart(mime); curl_mime_name(p, "purpose"); curl_mime_data(p, "batch", CURL_ZERO_TERMINATED);
  curl_easy_setopt(e, CURLOPT_URL, argv[1]); curl_easy_setopt(e, CURLOPT_MIMEPOST, mime);
  curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_socket); curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_add_handle(m, e);
  while (running && now_ms() - t0 < 10000) {
    long to = deadline_ms < 0 ? 200 : deadline_ms - now_ms();
    int n = poll(fds, (nfds_t)nfds, (int)(to < 0 ? 0 : to > 200 ? 200 : to));
    for (i = 0; n > 0 && i < nfds; i++)
      if (fds[i].revents)
        curl_multi_socket_action(m, fds[i].fd, (fds[i].revents & POLLIN ? CURL_CSELECT_IN : 0)
                                 | (fds[i].revents & POLLOUT ? CURL_CSELECT_OUT : 0), &running);
    if (deadline_ms >= 0 && now_ms() >= deadline_ms) { deadline_ms = -1; curl_multi_socket_action(m, CURL_SOCKET_TIMEOUT, 0, &running); }
    if (wanted) {   /* outside libcurl: the "Lua function" gives the next piece */
      wanted = 0;
      if (given < 50) { memset(feed, 'a' + given % 26, sizeof feed); feed[sizeof feed - 1] = '\n'; have = sizeof feed; pos = 0; given++; }
      else eof = 1;
      if (fix) curl_easy_pause(e, CURLPAUSE_SEND);
      curl_easy_pause(e, CURLPAUSE_CONT);
    }
  }
  while ((msg = curl_multi_info_read(m, &left)) != NULL)
    if (msg->msg == CURLMSG_DONE) {
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
      printf("\ndone: %s, HTTP %ld\n", curl_easy_strerror(msg->data.result), code);
    }
  printf("%s: still running %d, read calls %d, pieces given %d of 50, %ld ms\n", curl_version(), running, calls, given, now_ms() - t0);
  return running ? 1 : 0;
}
