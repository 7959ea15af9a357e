/*
** host_media_probe.c — a game's C host with voice and images
** (scripts/host-test.sh runs it plain, under TSan and under ASan + UBSan).
** Four threads at once, each with its own lua_State made with the host's
** own allocator, aigc_preload and its own client; each starts speech to
** files, transcriptions of files, images, a streamed chat and an upload
** fed by a function. Thread 0 drives them to their end and checks every
** result; the others call lua_close after 1, 20 or 100 frames, with the
** requests in flight (mid-upload, mid-download). At the end no part file
** (NAME.part) may be left in the folder: closing a state removes them.
**
**   aigc-host-media BASE_URL DIR     prints "aigc-host-media: ok", exit 0
*/
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "aigc_preload.h"
#include "host_arena.h"

#define THREADS 4

static const char *base_url, *dir;

static const char script[] =
  "local aigc = require 'aigc'\n"
  "local id, frames, dir = ...\n"
  "local client = aigc.client { base_url = BASE_URL, max_retries = 0, model = 'aigc-dev' }\n"
  "local note = dir .. '/note-' .. id .. '.wav'\n"
  "local f = assert(io.open(note, 'wb'))\n"
  "f:write('RIFF....WAVE' .. string.rep('-', 300000) .. 'AIGC-TEXT:halt ' .. id)\n"
  "f:close()\n"
  "local results, failures, want = 0, {}, 0\n"
  "local function ok () results = results + 1 end\n"
  "local function bad (e) failures[#failures + 1] = e.kind .. ': ' .. e.message end\n"
  "local function add (method, params)\n"
  "  params.on_done, params.on_error, want = params.on_done or ok, bad, want + 1\n"
  "  return client[method](client, params)\n"
  "end\n"
  "for i = 1, 3 do\n"
  "  add('speech_async', { input = string.rep('Who goes there? ', 20 * i), response_format = 'wav',\n"
  "                        to = dir .. '/line-' .. id .. '-' .. i .. '.wav', headers = { ['x-aigc-fault'] = 'pause=5' } })\n"
  "  add('speech_async', { input = 'chunk ' .. i, response_format = 'pcm', to = function () end })\n"
  "  add('transcribe_async', { file = note, on_done = function (res)\n"
  "    if res.text == 'halt ' .. id then ok() else bad { kind = 'text', message = res.text } end end })\n"
  "  add('images_generate_async', { prompt = 'portrait ' .. i, size = '64x64', response_format = 'b64_json',\n"
  "    on_done = function (res)\n"
  "      local paths, err = res:save(dir .. '/portrait-' .. id .. '-' .. i .. '-%d.png')\n"
  "      if paths then ok() else bad(err) end end })\n"
  "  add('chat_async', { messages = { { role = 'user', content = 'hi ' .. i } }, stream = function () end,\n"
  "                      headers = { ['x-aigc-fault'] = 'pause=5' } })\n"
  "end\n"
  "local pieces = 0\n"
  "add('files_upload_async', { purpose = 'batch', file = { filename = 'lines.jsonl', reader = function ()\n"
  "  pieces = pieces + 1\n"
  "  if pieces <= 40 then return string.rep('{\"custom_id\":\"x\"}\\n', 1000) end end } })\n"
  "if frames > 0 then\n"
  "  for _ = 1, frames do client:step(0.005) end\n"
  "  return 'closed with requests in flight'\n"
  "end\n"
  "while client:step(0.05) > 0 do end\n"
  "client:close()\n"
  "assert(#failures == 0, failures[1])\n"
  "assert(results == want, results .. ' of ' .. want .. ' results')\n"
  "return results .. ' results, all ok'\n";

typedef struct { long id; int ok; char summary[512]; } worker;

static void *run (void *arg) {
  static const int frames[THREADS] = { 0, 1, 20, 100 };   /* 0: to the end */
  worker *w = (worker *)arg;
  arena a = { 0 };
  lua_State *L = lua_newstate(arena_alloc, &a);
  if (L == NULL) {
    snprintf(w->summary, sizeof w->summary, "no lua_State");
    return NULL;
  }
  luaL_openlibs(L);
  if (aigc_preload(L) != 0) {
    snprintf(w->summary, sizeof w->summary, "aigc_preload: %s", lua_tostring(L, -1));
    lua_close(L);
    return NULL;
  }
  lua_pushstring(L, base_url);
  lua_setglobal(L, "BASE_URL");
  if (luaL_loadbuffer(L, script, sizeof script - 1, "=probe") != 0) {
    snprintf(w->summary, sizeof w->summary, "load: %s", lua_tostring(L, -1));
  }
  else {
    lua_pushinteger(L, w->id);
    lua_pushinteger(L, frames[w->id]);
    lua_pushstring(L, dir);
    if (lua_pcall(L, 3, 1, 0) != 0)   /* (an error is caught, and the host goes on) */
      snprintf(w->summary, sizeof w->summary, "raised: %s", lua_tostring(L, -1));
    else {
      snprintf(w->summary, sizeof w->summary, "%s", lua_tostring(L, -1));
      w->ok = 1;
    }
  }
  lua_close(L);   /* the requests still in flight end here */
  if (a.in_use != 0) {
    snprintf(w->summary, sizeof w->summary, "%zu bytes still held after lua_close", a.in_use);
    w->ok = 0;
  }
  return NULL;
}

/* How many NAME.part files dir holds (a partial download left behind). */
static int part_files (void) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;
  if (d == NULL)
    return -1;
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    if (len > 5 && strcmp(e->d_name + len - 5, ".part") == 0) {
      printf("aigc-host-media: left behind: %s\n", e->d_name);
      n++;
    }
  }
  closedir(d);
  return n;
}

int main (int argc, char **argv) {
  pthread_t threads[THREADS];
  worker workers[THREADS];
  int i, ok = 1, parts;
  if (argc < 3) {
    fprintf(stderr, "usage: %s BASE_URL DIR\n", argv[0]);
    return 2;
  }
  base_url = argv[1];
  dir = argv[2];
  memset(workers, 0, sizeof workers);
  for (i = 0; i < THREADS; i++) {
    workers[i].id = i;
    if (pthread_create(&threads[i], NULL, run, &workers[i]) != 0) {
      fprintf(stderr, "aigc-host-media: pthread_create failed\n");
      return 1;
    }
  }
  for (i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
    printf("aigc-host-media: thread %d: %s: %s\n", i, workers[i].ok ? "ok" : "FAILED", workers[i].summary);
    ok = ok && workers[i].ok;
  }
  parts = part_files();
  ok = ok && parts == 0;
  printf("aigc-host-media: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
