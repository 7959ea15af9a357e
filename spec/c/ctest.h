/*
** ctest.h — the smallest test harness that reports like the other suites.
**
**   TEST(name) { ... CHECK(cond); CHECK_EQ_INT(a, b); CHECK_EQ_MEM(p, n, q, m); ... }
**   int main (void) { RUN(name); ...; return ctest_report("sse"); }
**
** A test passes when none of its checks failed. The last line printed is
** "ctest <suite>: N passed, N failed", which scripts/run-tests.sh adds to the
** closing total. Failed checks print file:line and the expression.
*/
#ifndef AIGC_CTEST_H
#define AIGC_CTEST_H

#include <stdio.h>
#include <string.h>

static int ctest_passed, ctest_failed, ctest_current_failed;

#define TEST(name) static void name (void)

#define CHECK(cond) do { \
    if (!(cond)) { \
      ctest_current_failed = 1; \
      fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    } \
  } while (0)

/* A failed check that later checks depend on ends the test. */
#define REQUIRE(cond) do { \
    if (!(cond)) { \
      ctest_current_failed = 1; \
      fprintf(stderr, "  %s:%d: required: %s\n", __FILE__, __LINE__, #cond); \
      return; \
    } \
  } while (0)

#define CHECK_EQ_INT(a, b) do { \
    long long ctest_a_ = (long long)(a), ctest_b_ = (long long)(b); \
    if (ctest_a_ != ctest_b_) { \
      ctest_current_failed = 1; \
      fprintf(stderr, "  %s:%d: %s == %s: %lld != %lld\n", __FILE__, __LINE__, \
              #a, #b, ctest_a_, ctest_b_); \
    } \
  } while (0)

#define CHECK_EQ_MEM(p, n, q, m) do { \
    size_t ctest_n_ = (size_t)(n), ctest_m_ = (size_t)(m); \
    if (ctest_n_ != ctest_m_ || memcmp((p), (q), ctest_n_) != 0) { \
      ctest_current_failed = 1; \
      fprintf(stderr, "  %s:%d: %s (%zu bytes) differs from %s (%zu bytes)\n", \
              __FILE__, __LINE__, #p, ctest_n_, #q, ctest_m_); \
    } \
  } while (0)

#define CHECK_EQ_STR(p, q) CHECK_EQ_MEM((p), strlen(p), (q), strlen(q))

#define RUN(name) do { \
    ctest_current_failed = 0; \
    name(); \
    if (ctest_current_failed) { ctest_failed++; fprintf(stderr, "FAIL %s\n", #name); } \
    else ctest_passed++; \
  } while (0)

static int ctest_report (const char *suite) {
  printf("ctest %s: %d passed, %d failed\n", suite, ctest_passed, ctest_failed);
  return ctest_failed == 0 ? 0 : 1;
}

#endif
