/*
** ctest.h — the smallest test harness that reports like the other suites.
**
**   TEST(name) { ... CHECK(cond); CHECK_EQ_INT(a, b); CHECK_EQ_MEM(p, n, q, m); ... }
**   int main (void) { RUN(name); ...; return ctest_report("sse"); }
**
** A test passes when it made at least one check and none failed. A test
** that cannot run here calls SKIP("why") (no comma-decimal locale, no
** allocation failures under ASan or valgrind) and is counted as skipped;
** so is a test that returned without making any check, since it asserted
** nothing (its line says so). The last line printed is
** "ctest <suite>: N passed, N failed, N skipped", which scripts/run-tests.sh
** adds to the closing total. Failed checks print file:line and the expression.
*/
#ifndef AIGC_CTEST_H
#define AIGC_CTEST_H

#include <stdio.h>
#include <string.h>

static int ctest_passed, ctest_failed, ctest_skipped;
static int ctest_current_failed, ctest_current_checks, ctest_current_skipped;

#define TEST(name) static void name (void)

#define CHECK(cond) do { \
    ctest_current_checks++; \
    if (!(cond)) { \
      ctest_current_failed = 1; \
      fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    } \
  } while (0)

/* A failed check that later checks depend on ends the test. */
#define REQUIRE(cond) do { \
    ctest_current_checks++; \
    if (!(cond)) { \
      ctest_current_failed = 1; \
      fprintf(stderr, "  %s:%d: required: %s\n", __FILE__, __LINE__, #cond); \
      return; \
    } \
  } while (0)

#define CHECK_EQ_INT(a, b) do { \
    ctest_current_checks++; \
    long long ctest_a_ = (long long)(a), ctest_b_ = (long long)(b); \
    if (ctest_a_ != ctest_b_) { \
      ctest_current_failed = 1; \
      fprintf(stderr, "  %s:%d: %s == %s: %lld != %lld\n", __FILE__, __LINE__, \
              #a, #b, ctest_a_, ctest_b_); \
    } \
  } while (0)

#define CHECK_EQ_MEM(p, n, q, m) do { \
    ctest_current_checks++; \
    size_t ctest_n_ = (size_t)(n), ctest_m_ = (size_t)(m); \
    if (ctest_n_ != ctest_m_ || memcmp((p), (q), ctest_n_) != 0) { \
      ctest_current_failed = 1; \
      fprintf(stderr, "  %s:%d: %s (%zu bytes) differs from %s (%zu bytes)\n", \
              __FILE__, __LINE__, #p, ctest_n_, #q, ctest_m_); \
    } \
  } while (0)

#define CHECK_EQ_STR(p, q) CHECK_EQ_MEM((p), strlen(p), (q), strlen(q))

/* Ends the test as skipped: it cannot run here (say why). Checks already
   failed still fail it. */
#define SKIP(why) do { \
    ctest_current_skipped = 1; \
    printf("skip %s: %s\n", __func__, (why)); \
    return; \
  } while (0)

#define RUN(name) do { \
    ctest_current_failed = 0; \
    ctest_current_checks = 0; \
    ctest_current_skipped = 0; \
    name(); \
    if (ctest_current_failed) { ctest_failed++; fprintf(stderr, "FAIL %s\n", #name); } \
    else if (ctest_current_skipped) ctest_skipped++; \
    else if (ctest_current_checks == 0) { \
      ctest_skipped++; \
      printf("skip %s: it made no check (asserted nothing), so it did not pass\n", #name); \
    } \
    else ctest_passed++; \
  } while (0)

static int ctest_report (const char *suite) {
  printf("ctest %s: %d passed, %d failed, %d skipped\n", suite, ctest_passed, ctest_failed,
         ctest_skipped);
  return ctest_failed == 0 ? 0 : 1;
}

#endif
