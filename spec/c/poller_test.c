/*
** poller_test.c — unit tests for the engine's socket set (src/poller.c),
** on pipes: what is watched is exactly what poll() gets, a wait reports
** what is ready, a socket the engine opened stays parked in the epoll set
** when no longer watched (and leaves it when it turns readable), growth to
** many descriptors, and a wait with nothing watched and no time makes no
** system call.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctest.h"
#include "poller.h"

static int make_pipe (int fds[2]) {
  if (pipe(fds) != 0)
    return -1;
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  fcntl(fds[1], F_SETFL, O_NONBLOCK);
  return 0;
}

/* Whether fd is in p->ready with one of `events` in its revents. */
static int is_ready (const aigc_poller *p, int fd, short events) {
  size_t i;
  for (i = 0; i < p->nready; i++)
    if (p->ready[i].fd == fd && (p->ready[i].revents & events))
      return 1;
  return 0;
}

TEST(watch_wait_unwatch) {
  aigc_poller p;
  int fds[2];
  REQUIRE(make_pipe(fds) == 0);
  aigc_poller_init(&p);
  CHECK_EQ_INT(aigc_poller_watch(&p, fds[0], POLLIN), 0);
  CHECK_EQ_INT((int)p.nwatched, 1);
  CHECK_EQ_INT(aigc_poller_events(&p, fds[0]), POLLIN);
  CHECK_EQ_INT(aigc_poller_wait(&p, 0), 0);            /* nothing to read yet */
  CHECK_EQ_INT((int)p.nready, 0);
  CHECK(write(fds[1], "x", 1) == 1);
  CHECK(aigc_poller_wait(&p, 1000) > 0);
  CHECK(is_ready(&p, fds[0], POLLIN));
  aigc_poller_unwatch(&p, fds[0]);
  CHECK_EQ_INT((int)p.nwatched, 0);
  CHECK_EQ_INT(aigc_poller_events(&p, fds[0]), 0);
  CHECK_EQ_INT(aigc_poller_wait(&p, 0), 0);            /* not watched: not reported */
  CHECK_EQ_INT((int)p.nready, 0);
  aigc_poller_free(&p);
  close(fds[0]);
  close(fds[1]);
}

TEST(writable_and_rewatch) {
  aigc_poller p;
  int fds[2];
  REQUIRE(make_pipe(fds) == 0);
  aigc_poller_init(&p);
  CHECK_EQ_INT(aigc_poller_watch(&p, fds[1], POLLOUT), 0);
  CHECK(aigc_poller_wait(&p, 1000) > 0);
  CHECK(is_ready(&p, fds[1], POLLOUT));
  /* Watched for something else: the same slot, the new events. */
  CHECK_EQ_INT(aigc_poller_watch(&p, fds[1], POLLIN), 0);
  CHECK_EQ_INT((int)p.nwatched, 1);
  CHECK_EQ_INT(aigc_poller_wait(&p, 0), 0);
  CHECK_EQ_INT((int)p.nready, 0);
  aigc_poller_free(&p);
  close(fds[0]);
  close(fds[1]);
}

/* Removing from the middle keeps `watched` exact and every fd findable. */
TEST(many_descriptors) {
  enum { N = 100 };
  aigc_poller p;
  int fds[N][2], i;
  aigc_poller_init(&p);
  for (i = 0; i < N; i++) {
    REQUIRE(make_pipe(fds[i]) == 0);
    CHECK_EQ_INT(aigc_poller_watch(&p, fds[i][0], POLLIN), 0);
  }
  CHECK_EQ_INT((int)p.nwatched, N);
  for (i = 0; i < N; i += 2)
    aigc_poller_unwatch(&p, fds[i][0]);
  CHECK_EQ_INT((int)p.nwatched, N / 2);
  for (i = 0; i < N; i++)
    CHECK_EQ_INT(aigc_poller_events(&p, fds[i][0]), i % 2 ? POLLIN : 0);
  for (i = 0; i < N; i++)
    CHECK(write(fds[i][1], "x", 1) == 1);
  CHECK(aigc_poller_wait(&p, 1000) > 0);
  CHECK_EQ_INT((int)p.nready, N / 2);
  for (i = 1; i < N; i += 2)
    CHECK(is_ready(&p, fds[i][0], POLLIN));
  aigc_poller_free(&p);
  for (i = 0; i < N; i++) {
    close(fds[i][0]);
    close(fds[i][1]);
  }
}

/*
** A descriptor the engine opened stays in the epoll set when it is no
** longer watched (a keep-alive connection between requests): watching it
** again costs nothing, and if it turns readable while parked (the server
** closed it), a wait drops it without reporting it.
*/
TEST(parked_socket) {
  aigc_poller p;
  int fds[2];
  REQUIRE(make_pipe(fds) == 0);
  aigc_poller_init(&p);
  aigc_poller_opened(&p, fds[0]);
  if (!aigc_poller_uses_epoll(&p)) {
    aigc_poller_free(&p);
    close(fds[0]);
    close(fds[1]);
    SKIP("no epoll here (poll() only): nothing is parked");
  }
  CHECK_EQ_INT(aigc_poller_watch(&p, fds[0], POLLIN), 0);
  aigc_poller_unwatch(&p, fds[0]);
  CHECK(write(fds[1], "x", 1) == 1);
  CHECK(aigc_poller_wait(&p, 1000) > 0);        /* epoll saw it (parked) ... */
  CHECK_EQ_INT((int)p.nready, 0);               /* ... and it is not reported */
  CHECK_EQ_INT(aigc_poller_wait(&p, 0), 0);     /* dropped: seen no more */
  CHECK_EQ_INT(aigc_poller_watch(&p, fds[0], POLLIN), 0);   /* watched again */
  CHECK(aigc_poller_wait(&p, 1000) > 0);
  CHECK(is_ready(&p, fds[0], POLLIN));
  aigc_poller_closing(&p, fds[0]);
  close(fds[0]);
  aigc_poller_unwatch(&p, fds[0]);
  aigc_poller_free(&p);
  close(fds[1]);
}

/* A descriptor number reused after a close is a new socket. */
TEST(reused_number) {
  aigc_poller p;
  int a[2], b[2];
  REQUIRE(make_pipe(a) == 0);
  aigc_poller_init(&p);
  aigc_poller_opened(&p, a[0]);
  CHECK_EQ_INT(aigc_poller_watch(&p, a[0], POLLIN), 0);
  aigc_poller_unwatch(&p, a[0]);
  aigc_poller_closing(&p, a[0]);
  close(a[0]);
  close(a[1]);
  REQUIRE(make_pipe(b) == 0);   /* most likely the same numbers */
  aigc_poller_opened(&p, b[0]);
  CHECK_EQ_INT(aigc_poller_watch(&p, b[0], POLLIN), 0);
  CHECK(write(b[1], "x", 1) == 1);
  CHECK(aigc_poller_wait(&p, 1000) > 0);
  CHECK(is_ready(&p, b[0], POLLIN));
  aigc_poller_free(&p);
  close(b[0]);
  close(b[1]);
}

TEST(nothing_watched_no_wait) {
  aigc_poller p;
  aigc_poller_init(&p);
  CHECK_EQ_INT(aigc_poller_wait(&p, 0), 0);
  CHECK_EQ_INT((int)p.nready, 0);
  CHECK_EQ_INT(aigc_poller_watch(&p, -1, POLLIN), -1);   /* not a descriptor */
  aigc_poller_free(&p);
}

int main (void) {
  RUN(watch_wait_unwatch);
  RUN(writable_and_rewatch);
  RUN(many_descriptors);
  RUN(parked_socket);
  RUN(reused_number);
  RUN(nothing_watched_no_wait);
  return ctest_report("poller");
}
