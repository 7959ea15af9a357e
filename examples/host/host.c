/*
** host.c — a C host that embeds aigc (issue 13 item 3): two threads, each
** with its own lua_State, its own aigc client and its own script, ticking
** at 60 Hz and calling the script's update() every frame, the way a game
** engine runs its scripting. aigc is linked statically (libaigc.a, its
** Lua modules compiled in: nothing is read from disk), so the host needs
** only this file, Lua, libcurl and pthreads.
**
**   make host && build/c-host/aigc-host URL [SECONDS]
**   (URL: an OpenAI-compatible base URL, e.g. the bundled server's
**   http://127.0.0.1:8089/v1; default $OPENAI_BASE_URL; SECONDS default 3)
**
** Each script defines update(frame) and finish() -> summary, ok. The host
** prints one line per thread and exits 0 when both scripts say ok. What is
** thread-safe and why: examples/host/README.md.
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "aigc_preload.h"

#define FRAME_NS (1000000000L / 60)

/*
** The two scripts. The tavern's NPCs chatter in the background (streamed,
** capped at two at once) and one NPC walks away now and then (its request
** canceled); the player's thread asks interactive questions, blocking
** nothing: both only call step(0) once per frame.
*/
static const char tavern_script[] =
  "local aigc = require 'aigc'\n"
  "local client = aigc.client { base_url = BASE_URL, max_retries = 0, max_concurrency = 4,\n"
  "                             max_concurrency_by_priority = { background = 2 } }\n"
  "local replies, deltas, canceled, failures, live = 0, 0, 0, {}, {}\n"
  "local function chatter (frame)\n"
  "  local req = client:chat_async { messages = { { role = 'user', content = 'NPC line ' .. frame } },\n"
  "    priority = 'background', stream = function (d) if d then deltas = deltas + 1 end end,\n"
  "    headers = { ['x-aigc-fault'] = 'pause=10' },   -- (the bundled server: 10 ms between deltas)\n"
  "    on_done = function () replies = replies + 1 end,\n"
  "    on_error = function (e) if e.kind == 'canceled' then canceled = canceled + 1\n"
  "                            else failures[#failures + 1] = e.kind .. ': ' .. e.message end end }\n"
  "  live[#live + 1] = req\n"
  "end\n"
  "function update (frame)\n"
  "  if frame % 6 == 1 then chatter(frame) end\n"
  "  if frame % 45 == 0 and live[1] then table.remove(live):cancel('the NPC walked away') end\n"
  "  if #live > 8 then table.remove(live, 1) end\n"
  "  client:step(0)\n"
  "end\n"
  "function finish ()\n"
  "  while client:step(0.05) > 0 do end\n"
  "  client:close()\n"
  "  return string.format('%d replies, %d deltas, %d canceled, %d failed%s', replies, deltas, canceled,\n"
  "    #failures, failures[1] and (' (' .. failures[1] .. ')') or ''), replies > 0 and #failures == 0\n"
  "end\n";

static const char player_script[] =
  "local aigc = require 'aigc'\n"
  "local client = aigc.client { base_url = BASE_URL, max_retries = 0 }\n"
  "local replies, failures, waiting = 0, {}, nil\n"
  "function update (frame)\n"
  "  if not waiting and frame % 20 == 1 then\n"
  "    waiting = client:chat_async { messages = { { role = 'user', content = 'Player asks ' .. frame } },\n"
  "      priority = 'interactive',\n"
  "      on_done = function (res) replies = replies + 1; waiting = nil; assert(res.choices[1]) end,\n"
  "      on_error = function (e) failures[#failures + 1] = e.kind .. ': ' .. e.message; waiting = nil end }\n"
  "  end\n"
  "  client:step(0)\n"
  "end\n"
  "function finish ()\n"
  "  while client:step(0.05) > 0 do end\n"
  "  client:close()\n"
  "  return string.format('%d replies, %d failed%s', replies, #failures,\n"
  "    failures[1] and (' (' .. failures[1] .. ')') or ''), replies > 0 and #failures == 0\n"
  "end\n";

typedef struct worker {
  const char *name, *script, *base_url;
  double seconds;
  pthread_t thread;
  /* results, written by the worker, read by main after pthread_join */
  int ok, frames, late_frames;
  double worst_update_ms;
  char summary[512];
} worker;

static double now_s (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Sleeps until the absolute monotonic time *next, then advances it a frame. */
static void next_frame (struct timespec *next) {
  next->tv_nsec += FRAME_NS;
  if (next->tv_nsec >= 1000000000L) {
    next->tv_nsec -= 1000000000L;
    next->tv_sec++;
  }
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL) != 0) {}
}

/* Calls the global function `fn` with nargs arguments; records a failure. */
static int call_script (lua_State *L, worker *w, const char *fn, int nargs, int nresults) {
  lua_getglobal(L, fn);
  lua_insert(L, -1 - nargs);
  if (lua_pcall(L, nargs, nresults, 0) != 0) {
    snprintf(w->summary, sizeof w->summary, "%s() raised: %s", fn, lua_tostring(L, -1));
    lua_pop(L, 1);
    return 0;
  }
  return 1;
}

static void run_frames (lua_State *L, worker *w) {
  struct timespec next;
  double end = now_s() + w->seconds;
  clock_gettime(CLOCK_MONOTONIC, &next);
  while (now_s() < end) {
    double t0 = now_s(), ms;
    lua_pushinteger(L, ++w->frames);
    if (!call_script(L, w, "update", 1, 0))
      return;
    ms = (now_s() - t0) * 1000.0;
    if (ms > w->worst_update_ms)
      w->worst_update_ms = ms;
    if (ms > 1000.0 / 60)
      w->late_frames++;
    next_frame(&next);
  }
  if (call_script(L, w, "finish", 0, 2)) {
    snprintf(w->summary, sizeof w->summary, "%s", lua_tostring(L, -2));
    w->ok = lua_toboolean(L, -1);
    lua_pop(L, 2);
  }
}

static void *worker_main (void *arg) {
  worker *w = (worker *)arg;
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    snprintf(w->summary, sizeof w->summary, "no memory for a lua_State");
    return NULL;
  }
  luaL_openlibs(L);
  if (aigc_preload(L) != 0) {   /* require "aigc" now loads from memory */
    snprintf(w->summary, sizeof w->summary, "aigc_preload: %s", lua_tostring(L, -1));
    lua_close(L);
    return NULL;
  }
  lua_pushstring(L, w->base_url);
  lua_setglobal(L, "BASE_URL");
  if (luaL_loadbuffer(L, w->script, strlen(w->script), w->name) != 0 || lua_pcall(L, 0, 0, 0) != 0)
    snprintf(w->summary, sizeof w->summary, "script: %s", lua_tostring(L, -1));
  else
    run_frames(L, w);
  lua_close(L);   /* collects the clients: their requests are over */
  return NULL;
}

int main (int argc, char **argv) {
  const char *base_url = argc > 1 ? argv[1] : getenv("OPENAI_BASE_URL");
  double seconds = argc > 2 ? atof(argv[2]) : 3.0;
  worker workers[2];
  int i, ok = 1;
  if (base_url == NULL || seconds <= 0) {
    fprintf(stderr, "usage: %s BASE_URL [SECONDS]   (or OPENAI_BASE_URL)\n", argv[0]);
    return 2;
  }
  memset(workers, 0, sizeof workers);
  workers[0].name = "=tavern";
  workers[0].script = tavern_script;
  workers[1].name = "=player";
  workers[1].script = player_script;
  for (i = 0; i < 2; i++) {
    workers[i].base_url = base_url;
    workers[i].seconds = seconds;
    if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
      fprintf(stderr, "aigc-host: pthread_create failed\n");
      return 1;
    }
  }
  for (i = 0; i < 2; i++) {
    worker *w = &workers[i];
    pthread_join(w->thread, NULL);
    printf("aigc-host: %s: %d frames at 60 Hz, worst update %.2f ms, %d over a frame; %s: %s\n",
           w->name + 1, w->frames, w->worst_update_ms, w->late_frames, w->ok ? "ok" : "FAILED", w->summary);
    ok = ok && w->ok;
  }
  printf("aigc-host: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
