/*
** malloc_ceiling.c — an LD_PRELOAD library that serves the allocations of
** the exact sizes in POOL_SIZES (e.g. "1024,2048,4112,2168") from a private
** region, one LIFO free list per size, so they never reach glibc: the
** ceiling of what any pool of those blocks could buy (no code of its own
** on aigc's side, the most recently freed block handed back first). Every
** other allocation goes to glibc as usual. Without POOL_SIZES it does
** nothing.
**
**   cc -O2 -shared -fPIC -o build/bench/malloc_ceiling.so bench/malloc_ceiling.c
**   LD_PRELOAD=build/bench/malloc_ceiling.so POOL_SIZES=... lua5.4 bench/aigc_bench.lua ...
**
** A measuring tool, not part of aigc: one thread; the region (1 GiB
** reserved, touched as used) is never given back; memalign and
** malloc_usable_size are not intercepted (nothing measured here calls them
** on a pooled block).
*/
#define _GNU_SOURCE
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

extern void *__libc_malloc (size_t n);
extern void *__libc_calloc (size_t n, size_t size);
extern void *__libc_realloc (void *p, size_t n);
extern void __libc_free (void *p);

#define NCLASSES 8
#define HEADER   16                 /* a block's size class, keeping 16-byte alignment */
#define REGION   ((size_t)1 << 30)

static size_t classes[NCLASSES];
static int nclasses;
static char *region, *region_top, *region_end;
static void *free_lists[NCLASSES];

static int class_of (size_t n) {
  int i;
  for (i = 0; region != NULL && i < nclasses; i++)
    if (classes[i] == n)
      return i;
  return -1;
}

static int pooled (void *p) {
  return region != NULL && (char *)p >= region && (char *)p < region_end;
}

static void *take (int c) {
  void *p = free_lists[c];
  char *b;
  if (p != NULL) {
    free_lists[c] = *(void **)p;
    return p;
  }
  b = region_top;
  region_top += (classes[c] + HEADER + 63) & ~(size_t)63;
  if (region_top > region_end)
    abort();
  *(size_t *)(void *)b = (size_t)c;
  return b + HEADER;
}

static size_t class_of_block (void *p) {
  return *(size_t *)(void *)((char *)p - HEADER);
}

static void give (void *p) {
  size_t c = class_of_block(p);
  *(void **)p = free_lists[c];
  free_lists[c] = p;
}

__attribute__((constructor)) static void start (void) {
  const char *s = getenv("POOL_SIZES");
  void *r;
  if (s == NULL)
    return;
  while (*s != '\0' && nclasses < NCLASSES) {
    char *end;
    classes[nclasses++] = strtoul(s, &end, 10);
    s = *end == ',' ? end + 1 : end;
  }
  r = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (r == MAP_FAILED)
    return;
  region = region_top = (char *)r;
  region_end = region + REGION;
}

void *malloc (size_t n) {
  int c = class_of(n);
  return c >= 0 ? take(c) : __libc_malloc(n);
}

void *calloc (size_t n, size_t size) {
  int c = class_of(n * size);
  void *p;
  if (c < 0)
    return __libc_calloc(n, size);
  p = take(c);
  memset(p, 0, n * size);
  return p;
}

void free (void *p) {
  if (pooled(p))
    give(p);
  else
    __libc_free(p);
}

void *realloc (void *p, size_t n) {
  int c;
  void *q;
  if (pooled(p)) {
    size_t have = classes[class_of_block(p)];
    if (n <= have)
      return p;
    if ((q = malloc(n)) == NULL)
      return NULL;
    memcpy(q, p, have);
    give(p);
    return q;
  }
  if ((c = class_of(n)) < 0)
    return __libc_realloc(p, n);
  q = take(c);
  if (p != NULL) {
    size_t old = malloc_usable_size(p);
    memcpy(q, p, old < n ? old : n);
    __libc_free(p);
  }
  return q;
}
