/*
** lua_bound_core.c — the least a Lua binding of libcurl can do per request: a
** Lua module with one reused easy handle, the request body in, the reply
** body out as a Lua string. Nothing else: no non-blocking driver, no
** timeouts, no headers kept, no error mapping, no retries.
**
** bench/lua_bound.lua runs the benchmark's request through it twice: as a
** hand-rolled client (lua-cjson both ways) and as the bound itself (the
** body made by string.format, the reply's tables made without parsing).
** With floor.c, the C program doing the same work, these separate what
** the Lua interpreter must pay from what aigc adds.
**
**   local b = require "lua_bound_core"
**   local h = b.open(url)          -- the same headers and options as floor.c
**   local body = b.post(h, json)   -- raises on a failed transfer or a non-200
**   b.multi(url, total, k, make_body, on_reply)
**       -- floor.c's curl-multi loop, K in flight: make_body(i) gives the
**       -- i-th request body, on_reply(body) gets each reply
*/
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <lua.h>
#include <lauxlib.h>

typedef struct bound {
  CURL *easy;
  struct curl_slist *headers;
  char *data;
  size_t len, cap;
  struct bound *done_next;   /* its transfer ended this turn (read, not yet removed) */
  CURLcode done_code;
} bound;

static size_t on_body (char *p, size_t size, size_t n, void *ud) {
  bound *b = (bound *)ud;
  size_t add = size * n;
  if (b->len + add > b->cap) {
    size_t cap = (b->len + add) * 2;
    char *grown = (char *)realloc(b->data, cap);
    if (grown == NULL)
      return 0;   /* libcurl fails the transfer: post() raises */
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, add);
  b->len += add;
  return add;
}

static void set_options (CURL *easy, const char *url, struct curl_slist *headers, bound *sink) {
  curl_easy_setopt(easy, CURLOPT_URL, url);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, sink);
}

/* floor.c's request headers, in its order */
static struct curl_slist *request_headers (void) {
  struct curl_slist *h = NULL;
  h = curl_slist_append(h, "Accept: application/json");
  h = curl_slist_append(h, "Content-Type: application/json");
  h = curl_slist_append(h, "User-Agent: floor/0.1.0 Lua/5.4 libcurl/" LIBCURL_VERSION);
  h = curl_slist_append(h, "Authorization: Bearer sk-bench");
  h = curl_slist_append(h, "Expect:");
  return h;
}

static int bound_gc (lua_State *L) {
  bound *b = (bound *)lua_touserdata(L, 1);
  if (b->easy != NULL)
    curl_easy_cleanup(b->easy);
  curl_slist_free_all(b->headers);
  free(b->data);
  b->easy = NULL;
  b->headers = NULL;
  b->data = NULL;
  return 0;
}

static int bound_open (lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  bound *b = (bound *)lua_newuserdata(L, sizeof *b);
  memset(b, 0, sizeof *b);
  if (luaL_newmetatable(L, "bench.lua_bound_core")) {
    lua_pushcfunction(L, bound_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  b->easy = curl_easy_init();
  if (b->easy == NULL)
    return luaL_error(L, "curl_easy_init failed");
  b->headers = request_headers();
  set_options(b->easy, url, b->headers, b);
  return 1;
}

static int bound_post (lua_State *L) {
  bound *b = (bound *)luaL_checkudata(L, 1, "bench.lua_bound_core");
  size_t len;
  const char *body = luaL_checklstring(L, 2, &len);
  long status = 0;
  if (b->easy == NULL)
    return luaL_error(L, "closed");
  curl_easy_setopt(b->easy, CURLOPT_POSTFIELDSIZE, (long)len);
  curl_easy_setopt(b->easy, CURLOPT_POSTFIELDS, body);
  b->len = 0;
  if (curl_easy_perform(b->easy) != CURLE_OK)
    return luaL_error(L, "transfer failed");
  curl_easy_getinfo(b->easy, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200)
    return luaL_error(L, "status %d", (int)status);
  lua_pushlstring(L, b->data != NULL ? b->data : "", b->len);
  return 1;
}

/*
** K in flight, as floor.c's run_multi: K easy handles (each with its own
** sink), refilled as each ends. The handles live in a userdata whose
** __gc frees them, so an error raised by a callback (or here) leaks
** nothing; the bodies being sent are kept in a table (index 7) until
** their transfer ends.
*/
typedef struct pool {
  CURLM *multi;
  struct curl_slist *headers;
  int k;
  bound slots[1];   /* k of them */
} pool;

static void pool_free (pool *p) {
  int i;
  for (i = 0; i < p->k; i++) {
    if (p->slots[i].easy != NULL) {
      if (p->multi != NULL)
        curl_multi_remove_handle(p->multi, p->slots[i].easy);
      curl_easy_cleanup(p->slots[i].easy);
    }
    free(p->slots[i].data);
    p->slots[i].easy = NULL;
    p->slots[i].data = NULL;
  }
  if (p->multi != NULL)
    curl_multi_cleanup(p->multi);
  curl_slist_free_all(p->headers);
  p->multi = NULL;
  p->headers = NULL;
  p->k = 0;
}

static int pool_gc (lua_State *L) {
  pool_free((pool *)lua_touserdata(L, 1));
  return 0;
}

/* Sends request i from slot s: make_body(i), kept until the end. */
static void start (lua_State *L, pool *p, int s, lua_Integer i) {
  size_t len;
  const char *body;
  lua_pushvalue(L, 4);
  lua_pushinteger(L, i);
  lua_call(L, 1, 1);
  body = luaL_checklstring(L, -1, &len);
  lua_rawseti(L, 7, s + 1);   /* (the table keeps the string: body stays valid) */
  curl_easy_setopt(p->slots[s].easy, CURLOPT_POSTFIELDSIZE, (long)len);
  curl_easy_setopt(p->slots[s].easy, CURLOPT_POSTFIELDS, body);
  p->slots[s].len = 0;
  curl_multi_add_handle(p->multi, p->slots[s].easy);
}

static int bound_multi (lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  lua_Integer total = luaL_checkinteger(L, 2), started = 0, done = 0;
  int k = (int)luaL_checkinteger(L, 3), i, running = 0;
  pool *p;
  luaL_checktype(L, 4, LUA_TFUNCTION);
  luaL_checktype(L, 5, LUA_TFUNCTION);
  luaL_argcheck(L, k >= 1 && k <= 100000, 3, "1 to 100,000");
  lua_settop(L, 5);
  p = (pool *)lua_newuserdata(L, sizeof *p + (size_t)(k - 1) * sizeof p->slots[0]);   /* 6 */
  memset(p, 0, sizeof *p);
  lua_newtable(L);   /* 7: the bodies in flight */
  lua_newtable(L);
  lua_pushcfunction(L, pool_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, 6);
  p->headers = request_headers();
  p->multi = curl_multi_init();
  if (p->multi == NULL)
    return luaL_error(L, "curl_multi_init failed");
  curl_multi_setopt(p->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
  for (i = 0; i < k; i++) {
    memset(&p->slots[i], 0, sizeof p->slots[i]);
    p->slots[i].easy = curl_easy_init();
    p->k = i + 1;
    if (p->slots[i].easy == NULL)
      return luaL_error(L, "curl_easy_init failed");
    set_options(p->slots[i].easy, url, p->headers, &p->slots[i]);
    curl_easy_setopt(p->slots[i].easy, CURLOPT_PRIVATE, (void *)&p->slots[i]);
  }
  for (i = 0; i < k && started < total; i++)
    start(L, p, i, ++started);
  while (done < total) {
    CURLMsg *msg;
    int left;
    bound *ended = NULL, **tail = &ended, *b;
    curl_multi_perform(p->multi, &running);
    /* Every message read before any handle is removed, as the floor and
       aigc do: libcurl (7.88) curl_multi_remove_handle walks the queue of
       unread messages (quadratic in the transfers ending in one turn). */
    while ((msg = curl_multi_info_read(p->multi, &left)) != NULL) {
      if (msg->msg != CURLMSG_DONE)
        continue;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&b);
      b->done_code = msg->data.result;
      b->done_next = NULL;
      *tail = b;
      tail = &b->done_next;
    }
    while ((b = ended) != NULL) {
      long status = 0;
      int s = (int)(b - p->slots);
      ended = b->done_next;
      curl_easy_getinfo(b->easy, CURLINFO_RESPONSE_CODE, &status);
      curl_multi_remove_handle(p->multi, b->easy);
      if (b->done_code != CURLE_OK)
        return luaL_error(L, "transfer failed");
      if (status != 200)
        return luaL_error(L, "status %d", (int)status);
      lua_pushvalue(L, 5);
      lua_pushlstring(L, b->data != NULL ? b->data : "", b->len);
      lua_call(L, 1, 0);
      done++;
      if (started < total)
        start(L, p, s, ++started);
    }
    if (done < total)
      curl_multi_poll(p->multi, NULL, 0, 1000, NULL);
  }
  pool_free(p);   /* (at once: the GC would free K handles later) */
  return 0;
}

int luaopen_lua_bound_core (lua_State *L) {
  lua_newtable(L);
  lua_pushcfunction(L, bound_open);
  lua_setfield(L, -2, "open");
  lua_pushcfunction(L, bound_post);
  lua_setfield(L, -2, "post");
  lua_pushcfunction(L, bound_multi);
  lua_setfield(L, -2, "multi");
  return 1;
}
