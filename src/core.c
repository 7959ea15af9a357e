/*
** core.c — the module aigc.core: the C half of aigc.
**
** lua/aigc/init.lua is the public face; this table gives it the engine
** constructor, the request methods, JSON, and the shared sentinels:
**   null             JSON null: a light userdata NULL (== cjson.null)
**   array(t)         marks t (or a new table) as a JSON array
**   json.encode/decode
**   engine(config)   one libcurl multi handle (engine.c)
**   call_options     the per-call options that are never sent (name -> reader)
**   error(t)         gives t the error metatable
**   header_problem(name, value)   nil, or what is wrong with a header
**   fields_fit(params, rules)     whether a call's fields need no closer check
**   opts_keys(opts)  the opts keys engine:submit reads (its hint)
**   file_kind(path)  "file", "directory", "fifo", "char"... or nil, message
**   realpath(path)   the path with its links and dots resolved, or nil, message, errno
**   readlink(path)   what a symbolic link holds, or nil, message, errno
**   truncate(path, n) the file cut to n bytes (truncate(2)): true, or nil, message, errno
**   create_private(path [, excl])  a file 0600 made (no shell): true, or nil, message, errno
**   list_dir, make_dir, link   a folder's entries, a folder made, a new name (dirfs.c)
**   lockfile(path)   an exclusive hold on a file name, or nil, message, code
**   hmac_sha256(key, msg)   HMAC-SHA-256 as 64 hex digits (sha256.h)
**   md5(state, bytes)       MD5 in steps: the state after bytes; md5(state) the hex digest
**
** The layers below it, the re-entrancy rule and the lifecycle contract are
** in aigc.h and docs/ARCHITECTURE.md. Here: sleep() ends early when a
** signal installs a debug hook (Ctrl-C), and the module prepares the
** interrupt probe (util.c) once.
*/
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* (before any header: dladdr, RTLD_NODELETE) */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "engine.h"
#include "error.h"
#include "headers.h"
#include "home.h"
#include "jsonlua.h"
#include "dirfs.h"
#include "lockfile.h"
#include "media.h"
#include "request.h"
#include "sha256.h"
#include "md5.h"
#include "util.h"

AIGC_EXPORT int luaopen_aigc_core (lua_State *L);

/*
** libcurl's global state: initialised once per process, never torn down
** (other libraries in the host may use libcurl too). curl_global_init is
** not thread-safe before libcurl 7.84: a host that opens aigc in several
** lua_States on several threads at once must not race on it, hence
** pthread_once. libcurl 7.88's curl_version_info fills its static struct
** again at every call: it is asked once, there too, and what aigc shows of
** it kept (two states opening aigc at once wrote libcurl's statics from two
** threads: spec/c/host_curlinfo_probe.c). These four and json.c's C
** locale are aigc's only C globals that are written, each inside a
** pthread_once (scripts/check-globals.lua).
*/
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;
static const char *curl_version_text;   /* libcurl's LIBCURL_VERSION, a constant */
static int curl_http2;

/*
** This library stays mapped until the process ends. LuaJIT's lua_close
** finalizes in rounds: the first unloads the C modules (dlclose), the next
** finalizes the userdata made by the first's finalizers -- a request a
** game's __gc submitted -- and called its __gc in unmapped code (a crash
** at quit). A host linking aigc statically is pinned anyway.
*/
static void pin_library (void) {
#if defined(RTLD_NODELETE) && defined(RTLD_NOLOAD)
  Dl_info info;
  if (dladdr((void *)&curl_once, &info) != 0 && info.dli_fname != NULL)
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
#endif
}

static void init_curl (void) {
  curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (curl_init_result == CURLE_OK) {
    const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
    curl_version_text = info->version;
    curl_http2 = (info->features & CURL_VERSION_HTTP2) != 0;
  }
  pin_library();
}

/* core.call_options: { name = reader, ... } (util.c has the list). */
static void push_call_options (lua_State *L) {
  const aigc_call_option *o;
  lua_newtable(L);
  for (o = aigc_call_options; o->name != NULL; o++) {
    lua_pushstring(L, o->reader);
    lua_setfield(L, -2, o->name);
  }
}

/*
** core.header_problem(name, value) -> nil | what is wrong: the one rule for
** headers (headers.c), for the Lua layer to check a client's or a call's
** headers with before it builds its "Name: value" lines.
*/
static int core_header_problem (lua_State *L) {
  size_t nlen, vlen;
  const char *name = luaL_checklstring(L, 1, &nlen);
  const char *value = luaL_checklstring(L, 2, &vlen);
  const char *problem = aigc_headers_problem(name, nlen, value, vlen);
  if (problem == NULL)
    return 0;
  lua_pushstring(L, problem);
  return 1;
}

/*
** core.url_problem(url[, proxy]) -> nil | what is wrong with it, as
** libcurl's own URL parser finds it when a transfer starts (its flags
** there; for a proxy, with the scheme guessed: "host:3128"), for the Lua
** layer to refuse a base URL or a proxy when the client is made: libcurl's
** word at the first call ("URL using bad/illegal format or missing URL")
** came as a connection error, retried. Nothing but libcurl's code's text
** is said: the URL may hold a password.
*/
static int core_url_problem (lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  unsigned int flags = CURLU_NON_SUPPORT_SCHEME | (lua_toboolean(L, 2) ? CURLU_GUESS_SCHEME : 0);
  CURLU *h = curl_url();
  CURLUcode rc;
  if (h == NULL)
    return 0;   /* (out of memory: the transfer will say so) */
  rc = curl_url_set(h, CURLUPART_URL, url, flags);
  curl_url_cleanup(h);
  if (rc == CURLUE_OK)
    return 0;
#if LIBCURL_VERSION_NUM >= 0x075000   /* 7.80.0 */
  lua_pushstring(L, curl_url_strerror(rc));
#else
  lua_pushfstring(L, "libcurl cannot parse it (CURLUcode %d)", (int)rc);
#endif
  return 1;
}

/*
** core.fields_fit(params, rules) -> boolean[, keys]: whether every field of params
** passes rules (field name -> "string" | "number" | "integer" | "boolean"
** | "table" | "function" | "stream" | "messages"), read raw. The Lua
** layer's argument checks (lua/aigc/check.lua) ask this first: true means
** their full walk would find nothing (they build `rules` from their own,
** for the fields whose rule is one of these); false means "walk": a field
** not in rules, a value to be judged (aigc.null, a callable table, NaN...),
** a table with a metatable. Reads only: no allocation, so no finalizer can
** run while it walks (the re-entrancy rule), and no error. When they fit,
** also the option keys params holds (request.h aigc_params_key_bit), the
** hint engine:submit takes (its 5th argument) in place of walking params
** again.
*/
static int message_list_fits (lua_State *L, int idx, int role) {
  int i, ok = 1;
  if (lua_getmetatable(L, idx)) {
    lua_pop(L, 1);
    return 0;
  }
  for (i = 1; ok; i++) {
    int t = lua_rawgeti(L, idx, i);   /* (the type: 5.3+, and compat-5.3 below) */
    if (t == LUA_TNIL) {
      lua_pop(L, 1);
      return i > 1;   /* (an empty list: the full check says what it is) */
    }
    ok = t == LUA_TTABLE;
    if (ok && lua_getmetatable(L, -1)) {
      lua_pop(L, 1);
      ok = 0;
    }
    if (ok) {
      lua_pushvalue(L, role);
      ok = lua_rawget(L, -2) == LUA_TSTRING;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  return 0;
}

static int value_fits (lua_State *L, const char *rule, int idx, int role) {
  int t = lua_type(L, idx);
  lua_Number x;
  if (strcmp(rule, "string") == 0)
    return t == LUA_TSTRING;
  if (strcmp(rule, "number") == 0)
    return t == LUA_TNUMBER && lua_tonumber(L, idx) == lua_tonumber(L, idx);   /* (not NaN) */
  if (strcmp(rule, "integer") == 0) {
    if (t != LUA_TNUMBER)
      return 0;
    x = lua_tonumber(L, idx);
    return x == floor(x) && !isinf(x);
  }
  if (strcmp(rule, "boolean") == 0)
    return t == LUA_TBOOLEAN;
  if (strcmp(rule, "table") == 0)
    return t == LUA_TTABLE;
  if (strcmp(rule, "function") == 0)
    return t == LUA_TFUNCTION;
  if (strcmp(rule, "stream") == 0)
    return t == LUA_TBOOLEAN || t == LUA_TFUNCTION;
  if (strcmp(rule, "messages") == 0)
    return t == LUA_TTABLE && message_list_fits(L, idx, role);
  return 0;
}

static int core_fields_fit (lua_State *L) {
  int fits = 1;
  unsigned keys = 0;   /* (the option keys engine:submit reads: its hint, as its own walk would find) */
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  if (lua_getmetatable(L, 1)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushliteral(L, "role");   /* at 3: made before the walk (it may allocate) */
  lua_pushnil(L);
  while (fits && lua_next(L, 1) != 0) {   /* key at 4, value at 5 */
    if (lua_type(L, 4) != LUA_TSTRING)
      fits = 0;
    else {
      size_t len;
      const char *k = lua_tolstring(L, 4, &len);
      keys |= aigc_params_key_bit(k, len);
      lua_pushvalue(L, 4);
      lua_rawget(L, 2);
      fits = lua_type(L, -1) == LUA_TSTRING && value_fits(L, lua_tostring(L, -1), 5, 3);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pushboolean(L, fits);
  if (!fits)
    return 1;
  lua_pushinteger(L, (lua_Integer)keys);
  return 2;
}

/*
** core.opts_keys(opts) -> integer: the opts keys engine:submit reads, as
** its own walk of opts finds them (every bit for a table with a
** metatable). The Lua layer makes it once for an opts table it shares
** between calls, and hands it to engine:submit (its 6th argument).
*/
static int core_opts_keys (lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushinteger(L, (lua_Integer)aigc_opts_keys(L, 1));
  return 1;
}

/* aigc.array([t]) -> t, marked so that it always encodes as a JSON array. */
static int core_array (lua_State *L) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  else {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    if (lua_getmetatable(L, 1)) {   /* never replace (or bypass) another's metatable */
      luaL_getmetatable(L, AIGC_ARRAY_MT);
      luaL_argcheck(L, lua_rawequal(L, -1, -2), 1, "the table already has another metatable");
      lua_pop(L, 2);
    }
  }
  luaL_setmetatable(L, AIGC_ARRAY_MT);
  return 1;
}

/* aigc.is_array(t) -> whether t carries the array mark. */
static int core_is_array (lua_State *L) {
  int marked = 0;
  if (lua_istable(L, 1) && lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, AIGC_ARRAY_MT);
    marked = lua_rawequal(L, -1, -2);
  }
  lua_pushboolean(L, marked);
  return 1;
}

/* core.error(t) -> t with the error metatable (for errors made in Lua). */
static int core_error (lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  luaL_setmetatable(L, AIGC_ERROR_MT);
  return 1;
}

/*
** core.sleep(seconds): blocks the thread, driving nothing (for frame-loop
** examples and benchmarks that need to idle without an event loop). A
** signal that installs a debug hook (Ctrl-C in the standalone interpreter)
** ends the sleep early, so that the hook runs as soon as Lua code does.
*/
static int core_sleep (lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  struct timespec ts;
  aigc_hooks hooks;
  luaL_argcheck(L, s >= 0 && s <= 86400 && s == s, 1, "seconds must be in 0..86400");
  aigc_hooks_snap(L, &hooks);
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    if (aigc_hooks_changed(L, &hooks))
      break;
  return 0;
}

/* core.now() -> monotonic seconds (for timers in the Lua layer). */
static int core_now (lua_State *L) {
  lua_pushnumber(L, (lua_Number)aigc_now());
  return 1;
}

/*
** core.file_kind(path) -> what stat(2) says the path is: "file" (a
** regular file), "directory", "fifo", "char", "block", "socket" or
** "other"; nil, message, errno when it cannot be told (no such file).
** Plain Lua cannot tell a pipe or a terminal from a file without opening
** it, and opening a FIFO or reading /dev/stdout can block for ever: the
** runner asks this before it reads a results file.
*/
static int core_file_kind (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0)
    return aigc_fail_errno(L, path, errno);
  lua_pushstring(L, aigc_dirfs_kind(st.st_mode));
  return 1;
}

/*
** core.realpath(path) -> realpath(3): the absolute path with its symbolic
** links, "." and ".." resolved (the file must exist); nil, message, errno
** otherwise. A lock taken beside a file (aigc.runfile's OUT.lock) is taken
** beside the file itself: two links to one results file named two locks,
** and two runs through them both wrote it. (A buffer of PATH_MAX on the C
** stack: nothing to free if pushing the result raises.)
*/
static int core_realpath (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char buf[PATH_MAX];
  if (realpath(path, buf) == NULL)
    return aigc_fail_errno(L, path, errno);
  lua_pushstring(L, buf);
  return 1;
}

/*
** core.readlink(path) -> readlink(2): the text of the symbolic link path
** (a dangling one too), or nil, message, errno (EINVAL: no link). realpath
** fails on a dangling link: a lock beside the file a run is to make
** through it went beside the link, and a run given the target locked it
** apart (util.real_path follows the links itself then).
*/
static int core_readlink (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char buf[PATH_MAX];
  ssize_t n = readlink(path, buf, sizeof buf);
  if (n < 0 || (size_t)n >= sizeof buf)
    return aigc_fail_errno(L, path, n < 0 ? errno : ENAMETOOLONG);
  lua_pushlstring(L, buf, (size_t)n);
  return 1;
}

/*
** core.truncate(path, size) -> true | nil, message, errno: truncate(2),
** the file at path cut to size bytes. aigc.runfile drops a killed run's
** partial last line so: it copied the rest to OUT.partial with io.open,
** which wrote through a symbolic link planted under that name (another
** file overwritten, then renamed over OUT) and waited for ever on a FIFO
** there. A cut needs no new file nor any free space.
*/
static int core_truncate (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer size = luaL_checkinteger(L, 2);
  luaL_argcheck(L, size >= 0, 2, "a size of 0 or more expected");
  if (truncate(path, (off_t)size) != 0)
    return aigc_fail_errno(L, path, errno);
  lua_pushboolean(L, 1);
  return 1;
}

/*
** core.hmac_sha256(key, msg) -> HMAC-SHA-256 of msg under key, as 64
** lowercase hex digits: the disk cache's digest of a call's credentials
** under the folder's random key (lua/aigc/cache.lua). Pure C, no
** allocation before the result.
*/
static int core_hmac_sha256 (lua_State *L) {
  static const char digits[] = "0123456789abcdef";
  size_t klen, mlen;
  const char *key = luaL_checklstring(L, 1, &klen);
  const char *msg = luaL_checklstring(L, 2, &mlen);
  unsigned char d[AIGC_SHA256_BYTES];
  char out[2 * AIGC_SHA256_BYTES];
  int i;
  aigc_hmac_sha256(key, klen, msg, mlen, d);
  for (i = 0; i < AIGC_SHA256_BYTES; i++) {
    out[2 * i] = digits[d[i] >> 4];
    out[2 * i + 1] = digits[d[i] & 15];
  }
  lua_pushlstring(L, out, sizeof out);
  return 1;
}

/*
** core.md5(state, bytes) -> the MD5 state after bytes (a string; state nil:
** the start); core.md5(state) -> the digest of all the bytes given, as 32
** lowercase hex digits. In steps, without a userdata: files_upload_parts
** hashes a file's bytes piece by piece as it sends them (md5 = true).
*/
static int core_md5 (lua_State *L) {
  static const char digits[] = "0123456789abcdef";
  aigc_md5 m;
  unsigned char d[AIGC_MD5_BYTES];
  char out[2 * AIGC_MD5_BYTES];
  size_t slen, len;
  const char *state = luaL_optlstring(L, 1, NULL, &slen);
  const char *data = luaL_optlstring(L, 2, NULL, &len);
  int i;
  if (state == NULL) aigc_md5_init(&m);
  else if (slen == sizeof m) memcpy(&m, state, sizeof m);
  else return luaL_argerror(L, 1, "not an MD5 state");
  if (data != NULL) {
    aigc_md5_update(&m, data, len);
    lua_pushlstring(L, (const char *)&m, sizeof m);
    return 1;
  }
  aigc_md5_final(&m, d);
  for (i = 0; i < AIGC_MD5_BYTES; i++) {
    out[2 * i] = digits[d[i] >> 4];
    out[2 * i + 1] = digits[d[i] & 15];
  }
  lua_pushlstring(L, out, sizeof out);
  return 1;
}

/*
** core.hash64(s): aigc.cache's 64-bit hash of a string, as 16 hex digits:
** djb2 and a multiplicative hash, each modulo 2^32 (the Lua arithmetic it
** replaces, bit for bit: the digests already written still match). A
** resumed run hashes every done case's request, and the Lua loop was half
** of its instructions.
*/
/*
** core.scrub(v) -> v: v with the secrets of every live client of this Lua
** state (peers.h) replaced by "[redacted]", as engine:scrub replaces its
** own (a table in place): for text written with no client at hand (the
** command's last-resort error, a prompt log given no client), which
** searched only the environment's keys. No client live: v as it is.
*/
static int core_scrub (lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  aigc_error_scrub(L, 1, NULL);
  lua_settop(L, 1);
  return 1;
}

static int core_hash64 (lua_State *L) {
  static const char digits[] = "0123456789abcdef";
  size_t len, i;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  uint32_t h1 = 5381u, h2 = 2166136261u;
  char out[16];
  for (i = 0; i < len; i++) {
    h1 = h1 * 33u + s[i];
    h2 = h2 * 1048573u + s[i];
  }
  for (i = 0; i < 8; i++) {
    out[i] = digits[(h1 >> (28 - 4 * i)) & 15];
    out[8 + i] = digits[(h2 >> (28 - 4 * i)) & 15];
  }
  lua_pushlstring(L, out, sizeof out);
  return 1;
}

/*
** aigc.core.yieldable() -> whether a wait in the running code may yield to
** its task (util.h, aigc_may_yield): the Lua scheduler's rule as the core's.
*/
static int core_yieldable (lua_State *L) {
  lua_pushboolean(L, aigc_may_yield(L));
  return 1;
}

/*
** core.create_private(path [, exclusive]) -> true | nil, message, errno:
** makes path a file of mode 0600 (less when the umask takes more), empty
** when new; an existing file is left as it is (exclusive: EEXIST instead,
** a symbolic link too). For a file of private text -- a cache entry, a
** log, a tape -- which the Lua's io.open would make with the umask's mode
** (0644: readable by other users). Done by a shell before (`umask 077 &&
** : > path`): a fork and exec per cache write, milliseconds. O_NONBLOCK:
** a FIFO put there does not block the open (nothing is read or written).
*/
static int core_create_private (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int flags = O_WRONLY | O_CREAT | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, fd;
  if (lua_toboolean(L, 2))
    flags |= O_EXCL;
  do
    fd = open(path, flags, 0600);
  while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return aigc_fail_errno(L, path, errno);
  close(fd);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg core_funcs[] = {
  {"yieldable", core_yieldable},
  {"keep_interrupt", aigc_core_keep_interrupt},
  {"is_interrupt", aigc_core_is_interrupt},
  {"thread_interrupt", aigc_core_thread_interrupt},
  {"pcall_passing", aigc_core_pcall_passing},
  {"now", core_now},
  {"sleep", core_sleep},
  {"array", core_array},
  {"is_array", core_is_array},
  {"error", core_error},
  {"header_problem", core_header_problem},
  {"url_problem", core_url_problem},
  {"fields_fit", core_fields_fit},
  {"opts_keys", core_opts_keys},
  {"file_kind", core_file_kind},
  {"realpath", core_realpath},
  {"readlink", core_readlink},
  {"truncate", core_truncate},
  {"create_private", core_create_private},
  {"hmac_sha256", core_hmac_sha256},
  {"md5", core_md5},
  {"hash64", core_hash64},
  {"scrub", core_scrub},
  {NULL, NULL}
};

static const luaL_Reg json_funcs[] = {
  {"encode", aigc_jsonlua_encodefn},
  {"decode", aigc_jsonlua_decode},
  {NULL, NULL}
};

AIGC_EXPORT int luaopen_aigc_core (lua_State *L) {
  if (pthread_once(&curl_once, init_curl) != 0 || curl_init_result != CURLE_OK)
    return luaL_error(L, "curl_global_init failed");
  aigc_note_main_thread(L);
  aigc_home_open(L);   /* now: older than the game's later objects, finalized after them */
  luaL_newlib(L, core_funcs);
  aigc_dirfs_open(L);

  luaL_newmetatable(L, AIGC_ARRAY_MT);
  lua_pushliteral(L, "aigc.array");
  lua_setfield(L, -2, "__name");
  lua_setfield(L, -2, "array_mt");
  aigc_jsonlua_open(L);

  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_pushliteral(L, AIGC_VERSION);
  lua_setfield(L, -2, "_VERSION");
  lua_pushstring(L, curl_version_text);
  lua_setfield(L, -2, "curl_version");
  lua_pushboolean(L, curl_http2);
  lua_setfield(L, -2, "http2");

  luaL_newlib(L, json_funcs);
  lua_setfield(L, -2, "json");
  push_call_options(L);
  lua_setfield(L, -2, "call_options");

  aigc_lockfile_open(L);
  lua_setfield(L, -2, "lockfile");
  aigc_media_open(L);
  lua_setfield(L, -3, "vec");
  lua_setfield(L, -2, "media");
  aigc_interrupt_open(L);
  aigc_error_open(L);
  luaL_getmetatable(L, AIGC_ERROR_MT);
  lua_setfield(L, -2, "error_mt");
  aigc_engine_open(L);
  return 1;
}
