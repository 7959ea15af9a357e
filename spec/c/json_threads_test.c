/*
** json_threads_test.c — the JSON reader and writer beside a thread that
** changes the process's locale (src/json.c, src/jsonout.c).
**
** A host runs aigc on worker threads; another of its threads may call
** setlocale (a GUI toolkit's setlocale(LC_ALL, ""), a plug-in switching
** LC_NUMERIC to a comma-decimal locale and back). The reader's strtod and
** the locale's decimal point it fell back to were read at two moments: a
** change between them refused a valid number ("invalid number": a reply
** with a float lost, an embedding refused). Floats are read and written in
** a C locale of aigc's own now (uselocale), whatever the process's is.
** Skipped when no comma-decimal locale is installed.
*/
#include <locale.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "json.h"

static const char *COMMA[] = { "de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "de_DE", NULL };
static const char *comma_name;
static volatile int flipping;
static volatile long flips;   /* how many times the other thread changed it */

/* The other thread of the host: flips LC_NUMERIC until told to stop. */
static void *flip (void *arg) {
  (void)arg;
  while (flipping) {
    setlocale(LC_NUMERIC, comma_name);
    setlocale(LC_NUMERIC, "C");
    flips++;
  }
  return NULL;
}

static const char *find_comma_locale (void) {
  int i;
  for (i = 0; COMMA[i] != NULL; i++)
    if (setlocale(LC_NUMERIC, COMMA[i]) != NULL) {
      setlocale(LC_NUMERIC, "C");
      return COMMA[i];
    }
  return NULL;
}

TEST(floats_read_while_another_thread_sets_the_locale) {
  static const char text[] = "[1.5, 0.25, -3.125e2, 6.02e23, 0.1]";
  static const double want[] = { 1.5, 0.25, -312.5, 6.02e23, 0.1 };
  pthread_t t;
  int round, i, refused = 0, wrong = 0;
  aigc_json_arena arena;
  comma_name = find_comma_locale();
  if (comma_name == NULL) {
    SKIP("no comma-decimal locale installed (locale -a)");
  }
  aigc_json_arena_init(&arena);
  flipping = 1;
  flips = 0;
  REQUIRE(pthread_create(&t, NULL, flip, NULL) == 0);
  /* (until the other thread has changed the locale 20,000 times) */
  for (round = 0; round < 50000 || (flips < 20000 && round < 4000000); round++) {
    aigc_json_value v;
    aigc_json_error err;
    aigc_json_arena_reset(&arena);
    if (aigc_json_parse(&arena, text, sizeof text - 1, 0, &v, &err) != AIGC_JSON_OK) {
      refused++;
      continue;
    }
    for (i = 0; i < 5; i++)
      if (v.u.items[i].u.d != want[i])
        wrong++;
  }
  flipping = 0;
  pthread_join(t, NULL);
  aigc_json_arena_free(&arena);
  if (refused > 0 || wrong > 0)
    fprintf(stderr, "  %d of %d parses refused, %d numbers wrong\n", refused, round, wrong);
  CHECK_EQ_INT(refused, 0);
  CHECK_EQ_INT(wrong, 0);
}

TEST(floats_written_while_another_thread_sets_the_locale) {
  /* (seven decimals: past the short path, through snprintf and strtod; the
     same request must give the same bytes: a cache's or cassette's key) */
  double d = 123456.1234567;
  char buf[64];
  pthread_t t;
  int round, odd = 0;
  comma_name = find_comma_locale();
  if (comma_name == NULL) {
    SKIP("no comma-decimal locale installed (locale -a)");
  }
  flipping = 1;
  flips = 0;
  REQUIRE(pthread_create(&t, NULL, flip, NULL) == 0);
  for (round = 0; round < 50000 || (flips < 20000 && round < 4000000); round++) {
    int n = aigc_json_format_double(buf, d);
    if (n != 14 || memcmp(buf, "123456.1234567", 14) != 0)
      odd++;
  }
  flipping = 0;
  pthread_join(t, NULL);
  if (odd > 0)
    fprintf(stderr, "  %d of %d texts were not 123456.1234567 (the last: %s)\n", odd, round, buf);
  CHECK_EQ_INT(odd, 0);
}

int main (void) {
  RUN(floats_read_while_another_thread_sets_the_locale);
  RUN(floats_written_while_another_thread_sets_the_locale);
  return ctest_report("json_threads");
}
