/*
** host_curlinfo_probe.c — eight threads open aigc in eight lua_States at
** once (scripts/host-test.sh, spec/host_threads_spec.lua: meant for the TSan
** build). libcurl 7.88's curl_version_info fills its static struct (and its
** version-text buffers) again at every call; aigc called it in every
** luaopen_aigc_core, so states opening aigc together wrote libcurl's
** statics from several threads at once. libcurl is not instrumented, so
** ThreadSanitizer cannot see that: this host stands in a curl_version_info
** of its own (the executable's definition is the one libaigc.a and a
** loaded module call) that does what libcurl's does, copying the real
** answer into a static, in code TSan sees. It must be called once (under
** aigc's pthread_once, with curl_global_init), then never again.
**
**   aigc-host-curlinfo      prints "aigc-host-curlinfo: ok", exit 0
*/
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "aigc_preload.h"

#define THREADS 8

/* libcurl's way: one static struct, filled again at each call. */
static curl_version_info_data filled;

curl_version_info_data *curl_version_info (CURLversion stamp) {
  typedef curl_version_info_data *(*real_fn) (CURLversion);
  real_fn real = (real_fn)(size_t)dlsym(RTLD_NEXT, "curl_version_info");
  if (real == NULL)
    return NULL;
  filled = *real(stamp);
  return &filled;
}

static pthread_barrier_t all_ready;

typedef struct { int ok; char summary[256]; } worker;

static void *run (void *arg) {
  worker *w = (worker *)arg;
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    snprintf(w->summary, sizeof w->summary, "no lua_State");
    return NULL;
  }
  luaL_openlibs(L);
  pthread_barrier_wait(&all_ready);   /* (every thread opens aigc at the same moment) */
  if (aigc_preload(L) != 0 || luaL_dostring(L, "local core = require 'aigc.core'\n"
                                            "return core.curl_version .. (core.http2 and ' http2' or '')") != 0)
    snprintf(w->summary, sizeof w->summary, "%s", lua_tostring(L, -1));
  else {
    snprintf(w->summary, sizeof w->summary, "libcurl %s", lua_tostring(L, -1));
    w->ok = 1;
  }
  lua_close(L);
  return NULL;
}

int main (void) {
  pthread_t threads[THREADS];
  worker workers[THREADS];
  int i, ok = 1;
  memset(workers, 0, sizeof workers);
  pthread_barrier_init(&all_ready, NULL, THREADS);
  for (i = 0; i < THREADS; i++)
    if (pthread_create(&threads[i], NULL, run, &workers[i]) != 0) {
      fprintf(stderr, "aigc-host-curlinfo: pthread_create failed\n");
      return 1;
    }
  for (i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
    if (!workers[i].ok)
      printf("aigc-host-curlinfo: thread %d: FAILED: %s\n", i, workers[i].summary);
    ok = ok && workers[i].ok;
  }
  pthread_barrier_destroy(&all_ready);
  printf("aigc-host-curlinfo: %d states opened aigc at once: %s\n", THREADS, workers[0].summary);
  printf("aigc-host-curlinfo: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
