/*
** malloc_sites.c — an LD_PRELOAD library that counts a process's
** allocations of at least MT_MIN bytes (default 1000: the requests glibc
** serves from its large bins, whose _int_malloc first consolidates the
** fastbins), by size and by the six return addresses above the allocator.
** At exit it writes one line per site to MT_OUT (default
** build/bench/malloc_sites.out): "count size lib+offset ...". Lua's own
** allocations show as lua5.4+offset frames with aigc's caller below them.
** Per request: run a client twice with N1 and N2 requests and give both
** files to bench/malloc_sites.lua (2026-12-06 in bench/README.md).
**
**   cc -O2 -shared -fPIC -o build/bench/malloc_sites.so bench/malloc_sites.c -ldl
**   MT_OUT=a.out LD_PRELOAD=build/bench/malloc_sites.so lua5.4 bench/aigc_bench.lua ...
**
** A measuring tool, not part of aigc: one thread only (the clients measured
** here have one), a fixed table (sites past it are dropped, and counted).
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void *__libc_malloc (size_t n);
extern void *__libc_calloc (size_t n, size_t size);
extern void *__libc_realloc (void *p, size_t n);

#define NSITES 4096
#define DEPTH  6

typedef struct site {
  void *frames[DEPTH];
  size_t size;
  unsigned long count;
} site;

static site sites[NSITES];
static unsigned long dropped;
static size_t min_size = 1000;
static int busy = 1;              /* until the constructor has run */

static void count (size_t n) {
  void *bt[DEPTH + 2], *frames[DEPTH] = {0};
  uint64_t h = n * UINT64_C(1469598103934665603);
  int depth, i;
  size_t at, probes;
  if (busy || n < min_size)
    return;
  busy = 1;                       /* backtrace() may allocate */
  depth = backtrace(bt, DEPTH + 2);
  for (i = 2; i < depth; i++) {   /* above count() and the wrapper */
    frames[i - 2] = bt[i];
    h = (h ^ (uintptr_t)bt[i]) * UINT64_C(1099511628211);
  }
  for (at = h % NSITES, probes = 0; probes < NSITES; at = (at + 1) % NSITES, probes++) {
    site *s = &sites[at];
    if (s->count == 0) {
      memcpy(s->frames, frames, sizeof frames);
      s->size = n;
    }
    if (s->size == n && memcmp(s->frames, frames, sizeof frames) == 0) {
      s->count++;
      break;
    }
  }
  if (probes == NSITES)
    dropped++;
  busy = 0;
}

void *malloc (size_t n) { count(n); return __libc_malloc(n); }
void *calloc (size_t n, size_t size) { count(n * size); return __libc_calloc(n, size); }
void *realloc (void *p, size_t n) { count(n); return __libc_realloc(p, n); }

__attribute__((constructor)) static void start (void) {
  void *bt[2];
  const char *m = getenv("MT_MIN");
  backtrace(bt, 2);               /* loads libgcc's unwinder now, not inside count() */
  if (m != NULL)
    min_size = strtoul(m, NULL, 10);
  busy = 0;
}

static void write_frame (FILE *f, void *frame) {
  Dl_info di;
  if (dladdr(frame, &di) && di.dli_fname != NULL) {
    const char *name = strrchr(di.dli_fname, '/');
    fprintf(f, " %s+0x%lx", name != NULL ? name + 1 : di.dli_fname,
            (unsigned long)((char *)frame - (char *)di.dli_fbase));
  }
  else
    fprintf(f, " ?%p", frame);
}

__attribute__((destructor)) static void finish (void) {
  const char *out = getenv("MT_OUT");
  FILE *f;
  int i, j;
  busy = 1;
  f = fopen(out != NULL ? out : "build/bench/malloc_sites.out", "w");
  if (f == NULL)
    return;
  for (i = 0; i < NSITES; i++) {
    if (sites[i].count == 0)
      continue;
    fprintf(f, "%lu %zu", sites[i].count, sites[i].size);
    for (j = 0; j < DEPTH && sites[i].frames[j] != NULL; j++)
      write_frame(f, sites[i].frames[j]);
    fputc('\n', f);
  }
  if (dropped > 0)
    fprintf(f, "%lu 0 dropped\n", dropped);
  fclose(f);
}
