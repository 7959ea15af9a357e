/*
** syserr_test.c — unit tests for src/syserr.c (an errno's text without
** strerror's shared buffer): the C library's text, an unknown number, a
** small buffer cut and terminated, and threads that each read their own
** text while the others ask for other numbers.
*/
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "ctest.h"
#include "syserr.h"

TEST(known_text) {
  char buf[AIGC_ERRBUF];
  CHECK_EQ_STR(aigc_strerror(ENOENT, buf, sizeof buf), "No such file or directory");
  CHECK_EQ_STR(aigc_strerror(ENOSPC, buf, sizeof buf), "No space left on device");
}

TEST(unknown_number) {
  char buf[AIGC_ERRBUF];
  const char *s = aigc_strerror(123456, buf, sizeof buf);
  REQUIRE(s != NULL);
  CHECK(strstr(s, "123456") != NULL);   /* ("Unknown error 123456" / "error 123456") */
}

TEST(small_buffer) {
  char buf[8];
  const char *s;
  memset(buf, 'x', sizeof buf);
  s = aigc_strerror(123456, buf, sizeof buf);
  REQUIRE(s != NULL);
  CHECK(strlen(s) < 64);
  CHECK(s != buf || memchr(buf, '\0', sizeof buf) != NULL);
  CHECK(aigc_strerror(ENOENT, buf, 1) != NULL);
}

#define ROUNDS 20000
static void *reader (void *arg) {
  int e = *(int *)arg, i;
  char want[AIGC_ERRBUF], buf[AIGC_ERRBUF];
  snprintf(want, sizeof want, "%s", aigc_strerror(e, buf, sizeof buf));
  for (i = 0; i < ROUNDS; i++)
    if (strcmp(aigc_strerror(e, buf, sizeof buf), want) != 0)
      return arg;
  return NULL;
}

TEST(threads_each_their_text) {
  pthread_t t[4];
  int nums[4] = { 100001, 100002, 100003, 100004 }, i;
  void *bad = NULL, *r;
  for (i = 0; i < 4; i++)
    REQUIRE(pthread_create(&t[i], NULL, reader, &nums[i]) == 0);
  for (i = 0; i < 4; i++) {
    REQUIRE(pthread_join(t[i], &r) == 0);
    if (r != NULL) bad = r;
  }
  CHECK(bad == NULL);
}

int main (void) {
  RUN(known_text);
  RUN(unknown_number);
  RUN(small_buffer);
  RUN(threads_each_their_text);
  return ctest_report("syserr");
}
