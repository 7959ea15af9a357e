/*
** faultalloc.h — allocation failures on demand, for the C unit tests.
**
** Where the C library allows it (glibc, no sanitizer allocator), malloc,
** realloc, calloc and free are interposed: `fault_after = n` makes the
** (n+1)th allocation from now fail, `live` counts blocks not yet freed and
** `calls` the allocations made. A test can so make every allocation of an
** operation fail in turn and check that nothing leaks and nothing breaks.
** faults_work() says whether injection really happens (not under valgrind
** or ASan, which replace malloc themselves). Include it once per program.
*/
#ifndef AIGC_FAULTALLOC_H
#define AIGC_FAULTALLOC_H

#include <stdlib.h>

/* {====================================================================
** Allocation failures on demand
** ===================================================================== */

#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
#define FAULTS 1
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#undef FAULTS
#define FAULTS 0
#endif
#endif
#else
#define FAULTS 0
#endif

static long fault_after = -1;   /* allocations left before one fails; -1 never */
static long live = 0;           /* blocks allocated and not yet freed */
static long calls = 0;          /* malloc, realloc and calloc calls */

#if FAULTS
extern void *__libc_malloc (size_t n);
extern void *__libc_realloc (void *p, size_t n);
extern void *__libc_calloc (size_t n, size_t m);
extern void __libc_free (void *p);

static int fault_now (void) {
  calls++;
  if (fault_after < 0)
    return 0;
  return fault_after-- == 0;
}

void *malloc (size_t n) {
  void *p = fault_now() ? NULL : __libc_malloc(n);
  live += (p != NULL);
  return p;
}

void *realloc (void *p, size_t n) {
  void *np = fault_now() ? NULL : __libc_realloc(p, n);
  live += (p == NULL && np != NULL);
  return np;
}

void *calloc (size_t n, size_t m) {
  void *p = fault_now() ? NULL : __libc_calloc(n, m);
  live += (p != NULL);
  return p;
}

void free (void *p) {
  live -= (p != NULL);
  __libc_free(p);
}
#endif

/* Are failures really injected? (Not when a tool such as valgrind
** replaces malloc itself.) */
static int faults_work (void) {
  void *(*volatile alloc) (size_t) = malloc;   /* not elided by the compiler */
  void *p;
  if (!FAULTS)
    return 0;
  fault_after = 0;
  p = alloc(16);
  fault_after = -1;
  free(p);
  return p == NULL;
}

/* }==================================================================== */

#endif
