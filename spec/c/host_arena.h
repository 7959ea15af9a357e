/*
** host_arena.h — the host's own allocator of the host probes
** (host_media_probe.c, host_threads_probe.c): a game's arena, say, given to
** lua_newstate; it counts what the state holds, so a probe can check that
** lua_close gave every byte back.
*/
#ifndef AIGC_HOST_ARENA_H
#define AIGC_HOST_ARENA_H

#include <stdlib.h>

typedef struct { size_t in_use; } arena;

static void *arena_alloc (void *ud, void *ptr, size_t osize, size_t nsize) {
  arena *a = (arena *)ud;
  if (ptr != NULL)
    a->in_use -= osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  ptr = realloc(ptr, nsize);
  if (ptr != NULL)
    a->in_use += nsize;
  else if (osize > 0)
    a->in_use += osize;
  return ptr;
}

#endif
