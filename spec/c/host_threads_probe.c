/*
** host_threads_probe.c — many lua_States on many threads, coming and going
** (a job system, a server with a state per worker, LÖVE's love.thread).
** scripts/host-test.sh and spec/host_threads_spec.lua run it plain, under
** ThreadSanitizer and under ASan + UBSan.
**
** For SECONDS, WORKERS threads each make a lua_State (the host's own
** allocator), open aigc, run one round and close the state, again and
** again: a streamed chat (a float in its body), a plain one, one canceled
** while it streams, a blocking chat, JSON floats read and written, the
** client closed, the state closed. Beside them ABANDONERS threads make
** states that start streams and call lua_close with them in flight. Every
** round must end as its script says, every state must give back every
** byte, and the sanitizers must report nothing. (No thread here calls
** setlocale: Lua itself reads the process's locale -- its lexer, tonumber
** -- and fails under another thread's setlocale; aigc's own JSON numbers
** do not: spec/c/json_threads_test.c.)
**
**   aigc-host-threads BASE_URL [SECONDS]   prints "aigc-host-threads: ok", exit 0
**   aigc-host-threads BASE_URL SECONDS CPATH PATH   aigc from disk: aigc.core
**   through package.cpath CPATH (dlopen'ed by each state, dlclose'd by its
**   lua_close), the Lua modules through package.path PATH
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
#include "host_arena.h"

#define WORKERS 3
#define ABANDONERS 2

static const char *base_url, *cpath, *lpath;
static double deadline;

static const char round_script[] =
  "local aigc = require 'aigc'\n"
  "local round = ...\n"
  "local c = aigc.client { base_url = BASE_URL, max_retries = 0, model = 'aigc-dev', timeout = 20 }\n"
  "local done, canceled, deltas, fails = 0, 0, 0, {}\n"
  "local function failed (e)\n"
  "  if e.kind == 'canceled' then canceled = canceled + 1\n"
  "  else fails[#fails + 1] = e.kind .. ': ' .. e.message end\n"
  "end\n"
  "local function ok () done = done + 1 end\n"
  "local function msg (s) return { { role = 'user', content = s .. ' ' .. round } } end\n"
  "c:chat_async { messages = msg 'stream', temperature = 0.1234567, on_done = ok, on_error = failed,\n"
  "               stream = function (d) if d then deltas = deltas + 1 end end }\n"
  "c:chat_async { messages = msg 'plain', on_done = ok, on_error = failed }\n"
  "local doomed = c:chat_async { messages = msg 'doomed', stream = function () end, on_error = failed,\n"
  "  headers = { ['x-aigc-fault'] = 'pause=20' },\n"
  "  on_done = function () fails[#fails + 1] = 'a canceled request completed' end }\n"
  "c:step(0)\n"
  "doomed:cancel('the job moved on')\n"
  "local res = c:chat { messages = msg 'blocking' }\n"
  "if not (res.choices and res.choices[1]) then fails[#fails + 1] = 'blocking: no choice' end\n"
  "while c:step(0.05) > 0 do end\n"
  "c:close()\n"
  "local v = aigc.json.decode('{\"p\":[1.5,0.25,-3.125e2]}')\n"
  "if v.p[1] ~= 1.5 or v.p[2] ~= 0.25 or v.p[3] ~= -312.5 then fails[#fails + 1] = 'json read' end\n"
  "local s = aigc.json.encode { t = 123456.1234567 }\n"
  "if s ~= '{\"t\":123456.1234567}' then fails[#fails + 1] = 'json written: ' .. s end\n"
  "if done ~= 2 or canceled ~= 1 or deltas == 0 then\n"
  "  fails[#fails + 1] = ('%d done, %d canceled, %d deltas'):format(done, canceled, deltas)\n"
  "end\n"
  "return fails[1]\n";

static const char abandon_script[] =
  "local aigc = require 'aigc'\n"
  "local round = ...\n"
  "local c = aigc.client { base_url = BASE_URL, max_retries = 0, model = 'aigc-dev' }\n"
  "for i = 1, 3 do\n"
  "  c:chat_async { messages = { { role = 'user', content = 'left ' .. round .. ' ' .. i } },\n"
  "    stream = function () end, headers = { ['x-aigc-fault'] = 'pause=10' } }\n"
  "end\n"
  "for _ = 1, round % 7 do c:step(0.003) end\n"   /* (0 to 6 steps: not sent yet, mid-stream) */
  "return nil\n";   /* lua_close ends them */

typedef struct {
  const char *script;
  int rounds, failed;
  char summary[512];
} worker;

static double now_s (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* aigc in L: from libaigc.a (aigc_preload), or from disk (cpath). */
static int open_aigc (lua_State *L) {
  if (cpath == NULL)
    return aigc_preload(L);
  lua_getglobal(L, "package");
  lua_pushstring(L, cpath);
  lua_setfield(L, -2, "cpath");
  lua_pushstring(L, lpath);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  return 0;
}

/* One state, one round of w's script; 0 when it went as the script says. */
static int one_round (worker *w) {
  arena a = { 0 };
  int ok = 0;
  lua_State *L = lua_newstate(arena_alloc, &a);
  if (L == NULL) {
    snprintf(w->summary, sizeof w->summary, "no lua_State");
    return -1;
  }
  luaL_openlibs(L);
  if (open_aigc(L) != 0)
    snprintf(w->summary, sizeof w->summary, "aigc_preload: %s", lua_tostring(L, -1));
  else {
    lua_pushstring(L, base_url);
    lua_setglobal(L, "BASE_URL");
    if (luaL_loadbuffer(L, w->script, strlen(w->script), "=round") != 0)
      snprintf(w->summary, sizeof w->summary, "load: %s", lua_tostring(L, -1));
    else {
      lua_pushinteger(L, w->rounds + 1);
      if (lua_pcall(L, 1, 1, 0) != 0)
        snprintf(w->summary, sizeof w->summary, "round %d raised: %s", w->rounds + 1, lua_tostring(L, -1));
      else if (!lua_isnil(L, -1))
        snprintf(w->summary, sizeof w->summary, "round %d: %s", w->rounds + 1, lua_tostring(L, -1));
      else
        ok = 1;
    }
  }
  lua_close(L);   /* (the abandoners' requests end here) */
  if (ok && a.in_use != 0) {
    snprintf(w->summary, sizeof w->summary, "round %d: %zu bytes still held after lua_close",
             w->rounds + 1, a.in_use);
    ok = 0;
  }
  return ok ? 0 : -1;
}

static void *run (void *arg) {
  worker *w = (worker *)arg;
  do {
    if (one_round(w) != 0) {
      w->failed = 1;
      return NULL;
    }
    w->rounds++;
  } while (now_s() < deadline);
  snprintf(w->summary, sizeof w->summary, "%d states made, used and closed", w->rounds);
  return NULL;
}

int main (int argc, char **argv) {
  pthread_t threads[WORKERS + ABANDONERS];
  worker workers[WORKERS + ABANDONERS];
  int i, ok = 1, rounds = 0;
  if (argc < 2) {
    fprintf(stderr, "usage: %s BASE_URL [SECONDS [CPATH PATH]]\n", argv[0]);
    return 2;
  }
  base_url = argv[1];
  deadline = now_s() + (argc > 2 ? atof(argv[2]) : 3.0);
  cpath = argc > 4 ? argv[3] : NULL;
  lpath = argc > 4 ? argv[4] : NULL;
  memset(workers, 0, sizeof workers);
  for (i = 0; i < WORKERS + ABANDONERS; i++) {
    workers[i].script = i < WORKERS ? round_script : abandon_script;
    if (pthread_create(&threads[i], NULL, run, &workers[i]) != 0) {
      fprintf(stderr, "aigc-host-threads: pthread_create failed\n");
      return 1;
    }
  }
  for (i = 0; i < WORKERS + ABANDONERS; i++) {
    pthread_join(threads[i], NULL);
    printf("aigc-host-threads: %s %d: %s: %s\n", i < WORKERS ? "worker" : "abandoner", i,
           workers[i].failed ? "FAILED" : "ok", workers[i].summary);
    ok = ok && !workers[i].failed;
    rounds += workers[i].rounds;
  }
  printf("aigc-host-threads: %d states in all\n", rounds);
  printf("aigc-host-threads: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
