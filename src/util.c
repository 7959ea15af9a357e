/*
** util.c — the clock, the protected call of Lua callbacks and interrupts,
** the caller's position and the one misuse format, the readers of
** optional fields, the per-call options (util.h).
*/
#include <stdarg.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "syserr.h"
#include "util.h"

double aigc_now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}


/*
** {======================================================
** Misuse
** =======================================================
*/

static void push_where (lua_State *L) {
  lua_Debug ar;
  int level;
  for (level = 1; lua_getstack(L, level, &ar); level++) {
    if (!lua_getinfo(L, "Sl", &ar))
      break;
    if (ar.currentline > 0 && strstr(ar.short_src, "aigc/") == NULL
        && strstr(ar.short_src, "aigc\\") == NULL) {
      lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
      return;
    }
  }
  lua_pushliteral(L, "");
}

int aigc_argerror (lua_State *L, int arg, const char *fname, const char *fmt, ...) {
  va_list ap;
  luaL_checkstack(L, 4, "aigc argerror");
  push_where(L);
  lua_pushfstring(L, "bad argument #%d to '%s' (", arg, fname);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_pushliteral(L, ")");
  lua_concat(L, 4);
  return lua_error(L);
}

int aigc_error_at_caller (lua_State *L, const char *msg) {
  luaL_checkstack(L, 2, "aigc error");
  push_where(L);
  lua_pushstring(L, msg);
  lua_concat(L, 2);
  return lua_error(L);
}

/* }====================================================== */


/*
** {======================================================
** Per-call options
**
** The keys of a call's params that configure the call and are never sent
** in the body: one list, which the encoder skips (jsonlua.c) and the Lua
** layer reads as core.call_options (key -> who reads it). `stream` is not
** here (it is sent, as "stream": true), nor `engine` (the old name of
** `model`, sent as the model).
** =======================================================
*/

#define OPT(name, reader) { name, sizeof(name) - 1, reader }

const aigc_call_option aigc_call_options[] = {
  /* read by the engine (request.c, submit) */
  OPT("timeout", "engine"),
  OPT("connect_timeout", "engine"),
  OPT("deadline", "engine"),
  OPT("max_retries", "engine"),
  OPT("max_response_bytes", "engine"),
  OPT("max_json_values", "engine"),
  OPT("max_json_containers", "engine"),
  OPT("on_done", "engine"),
  OPT("on_error", "engine"),
  OPT("on_stream_end", "engine"),
  OPT("priority", "engine"),
  /* read by the client (lua/aigc/client.lua: headers and query) */
  OPT("headers", "client"),
  OPT("extra_headers", "client"),
  OPT("query", "client"),
  OPT("extra_query", "client"),
  OPT("idempotency_key", "client"),
  /* read by the encoder (jsonlua.c): its fields are sent as they are */
  OPT("extra_body", "encoder"),
  /* read by the dialogue layer (tools, schema) */
  OPT("schema", "dialogue"),
  OPT("schema_name", "dialogue"),
  OPT("schema_mode", "dialogue"),
  OPT("schema_strict", "dialogue"),
  OPT("max_tool_rounds", "dialogue"),
  OPT("tool_errors", "dialogue"),
  {NULL, 0, NULL}
};

#undef OPT

/*
** A filter in front of the table's walk (23 names, ~165 instructions a key;
** the encoder asks for every params key): per name length, a bit for each
** option's (first byte + 3 * last byte) & 63. A key whose bit is clear is no
** option; one whose bit is set (an option, or a rare collision: of the usual
** params keys only `logprobs`) is looked up in the table. Made once per
** process, inside pthread_once (scripts/check-globals.lua).
*/
#define OPT_FILTER_LEN 32   /* names longer than this go to the table */
#define OPT_FILTER_BIT(k, len) \
  ((uint64_t)1 << (((unsigned char)(k)[0] + 3u * (unsigned char)(k)[(len) - 1]) & 63u))
static pthread_once_t opt_filter_once = PTHREAD_ONCE_INIT;
static uint64_t opt_filter[OPT_FILTER_LEN];

static void make_opt_filter (void) {
  const aigc_call_option *o;
  for (o = aigc_call_options; o->name != NULL; o++)
    if (o->len < OPT_FILTER_LEN)
      opt_filter[o->len] |= OPT_FILTER_BIT(o->name, o->len);
}

int aigc_is_call_option (const char *k, size_t len) {
  const aigc_call_option *o;
  if (len == 0)
    return 0;
  if (len < OPT_FILTER_LEN && pthread_once(&opt_filter_once, make_opt_filter) == 0
      && (opt_filter[len] & OPT_FILTER_BIT(k, len)) == 0)
    return 0;
  for (o = aigc_call_options; o->name != NULL; o++)
    if (o->len == len && o->name[0] == k[0] && memcmp(o->name, k, len) == 0)
      return 1;
  return 0;
}

/* }====================================================== */



/*
** {======================================================
** Optional fields
** =======================================================
*/

char *aigc_opt_strdup (lua_State *L, int t, const aigc_argctx *cx, const char *field) {
  char *s = NULL;
  if (lua_getfield(L, t, field) != LUA_TNIL) {
    size_t len;
    const char *v;
    if (lua_type(L, -1) != LUA_TSTRING)
      aigc_argerror(L, cx->arg, cx->fname, "%s.%s: a string expected, got %s", cx->what, field,
                    luaL_typename(L, -1));
    v = lua_tolstring(L, -1, &len);
    if (strlen(v) != len)
      aigc_argerror(L, cx->arg, cx->fname, "%s.%s: contains a NUL byte", cx->what, field);
    s = (char *)malloc(len + 1);
    if (s == NULL)
      luaL_error(L, "not enough memory");
    memcpy(s, v, len + 1);
  }
  lua_pop(L, 1);
  return s;
}

/*
** Optional numeric fields of a table (the client's config, a call's
** params): a number of seconds > 0, or an integer in lo..hi. A string
** that looks like a number is refused, as it is in the Lua layer. The
** message names the field in its table: "bad argument #1 to 'chat'
** (params.timeout: ...)".
*/
double aigc_opt_seconds (lua_State *L, int t, const aigc_argctx *cx, const char *field,
                         double def) {
  double v = def;
  if (lua_getfield(L, t, field) != LUA_TNIL) {
    int isnum = lua_type(L, -1) == LUA_TNUMBER;   /* not "1" */
    v = isnum ? (double)lua_tonumber(L, -1) : 0;
    if (!isnum || !(v > 0) || v > 1e9)   /* (1e9 s: 31 years, and no overflow in libcurl's ms) */
      aigc_argerror(L, cx->arg, cx->fname, "%s.%s: a number of seconds > 0%s expected, got %s",
                    cx->what, field, v > 1e9 ? " and at most 1e9" : "",
                    isnum ? lua_tostring(L, -1) : luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return v;
}

/*
** The optional `deadline` field of a table: seconds > 0 for the whole
** call, or false to turn off a client's default for one call. 0: none.
*/
double aigc_opt_deadline (lua_State *L, int t, const aigc_argctx *cx, double def) {
  if (lua_getfield(L, t, "deadline") == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pop(L, 1);
  return aigc_opt_seconds(L, t, cx, "deadline", def);
}

int64_t aigc_opt_integer (lua_State *L, int t, const aigc_argctx *cx, const char *field,
                          int64_t def, int64_t lo, int64_t hi) {
  int64_t v = def;
  if (lua_getfield(L, t, field) != LUA_TNIL) {
    double d;
    int ok = lua_type(L, -1) == LUA_TNUMBER;   /* not "1" */
    /* A float with an integer value (2^20 on 5.3+) counts as that
       integer, as it does in the Lua layer's check and on 5.1. */
    if (ok && aigc_number_of(L, -1, &v, &d) == AIGC_NUM_FLOAT) {
      ok = d == floor(d) && d >= (double)lo && d <= (double)hi;
      if (ok) v = (int64_t)d;
    }
    if (!ok || v < lo || v > hi) {
      char range[64];
      snprintf(range, sizeof range, "%lld..%lld", (long long)lo, (long long)hi);
      aigc_argerror(L, cx->arg, cx->fname, "%s.%s: an integer in %s expected", cx->what, field,
                    range);
    }
  }
  lua_pop(L, 1);
  return v;
}

/* }====================================================== */


/*
** {======================================================
** Interrupts
**
** The standalone interpreter's Ctrl-C installs a debug hook from its
** signal handler (lua.c: lua_sethook(L, lstop, ...)); the hook raises
** "interrupted!" at the next Lua instruction or call. Hosts that stop a
** runaway script do the same. aigc must let that error through, not
** swallow it as a callback error, and must not sleep through it: waits
** wake on EINTR and at least every AIGC_WAIT_SLICE to look for a newly
** installed hook, and give it a Lua call to fire in (the probe).
** =======================================================
*/

/* Registry keys (their addresses). */
static const char interrupt_key = 'i';   /* the last error raised in a hook */
static const char suspect_key = 's';     /* the last error raised with hooks off (see below) */
static const char probe_key = 'p';       /* a Lua function of one instruction */
static const char keep_key = 'k';        /* aigc_core_keep_interrupt (kept: see compat.h) */

static int probe_hooks_off (lua_State *L, int *status);

void aigc_hooks_snap (lua_State *L, aigc_hooks *h) {
  lua_State *main;
  h->hook = lua_gethook(L);
  h->mask = lua_gethookmask(L);
  h->count = lua_gethookcount(L);
  main = aigc_main_thread(L);
  if (main != NULL && main != L) {
    h->main_hook = lua_gethook(main);
    h->main_mask = lua_gethookmask(main);
  }
  else {
    h->main_hook = NULL;
    h->main_mask = 0;
  }
}

int aigc_hooks_changed (lua_State *L, const aigc_hooks *h) {
  aigc_hooks now;
  aigc_hooks_snap(L, &now);
  if (now.hook != h->hook || now.mask != h->mask || now.count != h->count)
    return now.hook != NULL;   /* a hook removed is no interrupt */
  return now.main_hook != h->main_hook && now.main_hook != NULL;
}

static void mark_interrupt (lua_State *L, int idx) {
  lua_pushvalue(L, idx);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &interrupt_key);
}

/* At an outermost call (no drive under way): an old interrupt is history. */
void aigc_interrupt_forget (lua_State *L) {
  lua_pushboolean(L, 0);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &interrupt_key);
  lua_pushboolean(L, 0);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &suspect_key);
}

/* Loads the probe and makes the registry slots (so that setting them later
   allocates nothing), the kept handler too (made now: aigc_core_pcall_passing
   then pushes it without an allocation). Called once by luaopen_aigc_core. */
void aigc_interrupt_open (lua_State *L) {
  aigc_interrupt_forget(L);
  if (luaL_loadstring(L, "return") != LUA_OK)
    lua_error(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &probe_key);
  aigc_push_kept_cfunction(L, aigc_core_keep_interrupt, &keep_key);
  lua_pop(L, 1);
}

/* Whether the value at idx is the one kept under key. */
static int is_kept (lua_State *L, int idx, const char *key) {
  int yes = lua_rawgetp(L, LUA_REGISTRYINDEX, key) != LUA_TBOOLEAN && lua_rawequal(L, idx, -1);
  lua_pop(L, 1);
  return yes;
}

/*
** Suspects (5.1, 5.2, LuaJIT: no frame is named "hook"). Lua turns the
** hooks off while a hook runs, so an error whose message handler finds
** them off was raised in a hook -- or in a finalizer, where they are off
** too. The handler keeps it as the suspect; where it is caught, the hooks
** are probed again: on there, it came from a hook that fired inside the
** protected call (an interrupt: marked); off there, the call itself runs
** in a finalizer or a hook, where no hook can fire (not one). Both probes
** run only for an error: nothing is added to a call that succeeds.
*/
static int suspect_if_hooks_off (lua_State *L, int idx) {
  int status;
  if (probe_hooks_off(L, &status)) {
    lua_pushvalue(L, idx);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &suspect_key);
    return 1;
  }
  if (status == LUA_OK && is_kept(L, idx, &suspect_key)) {   /* (an old one, the same value) */
    lua_pushboolean(L, 0);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &suspect_key);
  }
  return 0;
}

static int confirm_suspect (lua_State *L, int idx) {
  int status;
  if (aigc_frames_name_hooks() || !is_kept(L, idx, &suspect_key))
    return 0;
  lua_pushboolean(L, 0);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &suspect_key);
  if (probe_hooks_off(L, &status) || status != LUA_OK)
    return 0;
  mark_interrupt(L, idx);
  return 1;
}

int aigc_is_interrupt (lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  return is_kept(L, idx, &interrupt_key) || confirm_suspect(L, idx);
}

int aigc_interrupt_probe (lua_State *L, aigc_hooks *h) {
  aigc_hooks now;
  int status;
  aigc_hooks_snap(L, &now);
  if (now.hook != NULL) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &probe_key);
    status = lua_pcall(L, 0, 0, 0);   /* the hook runs at the call and its instruction */
    if (status != LUA_OK) {
      mark_interrupt(L, -1);
      return status;
    }
  }
  if (now.main_hook != h->main_hook && now.main_hook != NULL) {
    /* In a coroutine, the hook went to the main thread (lua.c sets it on
       the state it runs): stop here, the main thread's code will see it. */
    lua_pushliteral(L, "interrupted!");
    mark_interrupt(L, -1);
    return LUA_ERRRUN;
  }
  aigc_hooks_snap(L, h);
  return LUA_OK;
}

/*
** Whether we run inside a __gc finalizer. Lua 5.4.4+ refuses lua_gc there
** (it returns -1); otherwise (and as a check) a finalizer shows on the
** stack as the metamethod "__gc".
*/
int aigc_in_finalizer (lua_State *L) {
  lua_Debug ar;
  int level;
  if (aigc_gc_refused(L))
    return 1;
  for (level = 0; lua_getstack(L, level, &ar); level++) {
    if (lua_getinfo(L, "n", &ar) && aigc_frame_is_finalizer(&ar))
      return 1;
  }
  return 0;
}

/* The probe's call hook: it ran, so hooks are on; it removes itself. */
static void probe_fired (lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
}

/*
** Whether debug hooks are off here: the probe, called with a call hook
** set, does not run it. Lua turns them off while a finalizer runs (5.1 and
** 5.2 on the thread it runs on; LuaJIT everywhere, in the coroutines it
** resumes too) and while a hook runs. The hooks found are put back, unless
** another one came meanwhile (an interrupt's, from a signal handler: it is
** left to fire); an error of the probe's call (that interrupt's, memory)
** is raised.
*/
static int probe_hooks_off (lua_State *L, int *status) {   /* the error left on the stack */
  lua_Hook hook = lua_gethook(L), now;
  int mask = lua_gethookmask(L), count = lua_gethookcount(L);
  luaL_checkstack(L, 2, NULL);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &probe_key);
  lua_sethook(L, probe_fired, LUA_MASKCALL, 0);
  *status = lua_pcall(L, 0, 0, 0);
  now = lua_gethook(L);
  if (now == probe_fired || now == NULL)
    lua_sethook(L, hook, mask, count);
  if (*status != LUA_OK)
    return 0;
  return now == probe_fired;
}

static int hooks_off (lua_State *L) {
  int status, off = probe_hooks_off(L, &status);
  if (status != LUA_OK) {
    if (aigc_hook_error(L, -1))
      mark_interrupt(L, -1);
    lua_error(L);
  }
  return off;
}

/*
** Whether a wait here may yield to the task it runs in. Not in a finalizer
** nor in a debug hook, whatever the coroutine: a blocking call made there
** must block (drive the loop), as it does on 5.4 -- on 5.1 its yield would
** raise "attempt to yield across metamethod/C-call boundary" into the code
** the collector interrupted, on LuaJIT it would stop the task with a
** hook's yield of no values. On 5.3 and 5.4 lua_isyieldable is enough (a
** finalizer is a call that cannot yield; aigc_in_finalizer would walk the
** stack to learn the same); elsewhere (compat.h,
** aigc_hooks_tell_finalizers) the hooks are probed, and this may raise
** (see hooks_off).
*/
int aigc_may_yield (lua_State *L) {
  if (!aigc_isyieldable(L))
    return 0;
  return !aigc_hooks_tell_finalizers() || !hooks_off(L);
}

static int tostring_call (lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

const char *aigc_tostring_safe (lua_State *L, int idx, size_t *len) {
  int status;
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING && !luaL_getmetafield(L, idx, "__tostring"))
    return luaL_tolstring(L, idx, len);   /* (the common case: no call) */
  if (lua_type(L, idx) == LUA_TSTRING)
    lua_pop(L, 1);   /* (the string metatable's own __tostring, set by someone) */
  luaL_checkstack(L, 3, NULL);
  lua_pushcfunction(L, tostring_call);
  lua_pushvalue(L, idx);
  status = lua_pcall(L, 1, 1, 0);
  if (status != LUA_OK) {
    if (status == LUA_ERRMEM || aigc_hook_error(L, -1))
      lua_error(L);
    lua_pop(L, 1);
    lua_pushfstring(L, "(a %s value whose __tostring failed)", luaL_typename(L, idx));
  }
  return lua_tolstring(L, -1, len);
}

/*
** Whether the frame above `level` of thread T (a Lua function, unnamed)
** was called by the debug library's hook (ldblib.c hookf) -- on 5.3, where
** such a frame may go unnamed (compat.h, aigc_hook_names_unsure): hookf
** left its hook table on the stack just below the hook function, so it is
** the last value the frame at `level` + 1 holds (lua_getlocal's slots end
** at the next frame's function). That table is its own metatable, with
** __mode "k" (ldblib.c, on 5.2-5.4). T may be a dead coroutine: values are
** pushed on its stack, above its error, and taken off, as debug.getlocal
** does.
*/
static int below_is_hook_table (lua_State *T, int level, const lua_Debug *ar) {
  lua_Debug below;
  int n, top = lua_gettop(T), yes = 0;
  if (!aigc_hook_names_unsure() || (ar->namewhat != NULL && ar->namewhat[0] != '\0')
      || !lua_getstack(T, level + 1, &below) || !lua_checkstack(T, 4))
    return 0;
  lua_pushnil(T);
  for (n = 1; n <= 1000 && lua_getlocal(T, &below, n) != NULL; n++)
    lua_replace(T, -2);
  if (lua_type(T, -1) == LUA_TTABLE && lua_getmetatable(T, -1) && lua_rawequal(T, -1, -2)) {
    lua_pushliteral(T, "__mode");
    lua_rawget(T, -2);
    yes = lua_type(T, -1) == LUA_TSTRING && strcmp(lua_tostring(T, -1), "k") == 0;
  }
  lua_settop(T, top);
  return yes;
}

/* Whether the frame at `level` of thread T was called by the hook
   mechanism (5.3+; never elsewhere: no frame is named "hook"). */
static int frame_is_hook (lua_State *T, int level, lua_Debug *ar) {
  return lua_getinfo(T, "n", ar) && (aigc_frame_is_hook(ar) || below_is_hook_table(T, level, ar));
}

/* Whether the error at 1 (a message handler's argument) was raised inside
   a debug hook: an interrupt, then marked (the stack left at it) -- or a
   suspect (5.1, 5.2, LuaJIT: told where it is caught), left untouched too
   (a traceback added would change an interrupt's message). */
static int marked_if_hook (lua_State *L) {
  lua_Debug ar;
  int level, hook = is_kept(L, 1, &interrupt_key);   /* (raised on by util.pcall_passing_interrupts: marked there) */
  /* A frame called by the hook mechanism is named "hook" (5.3+): the
     handler itself when a C hook (lua.c's) raised, the Lua function given
     to debug.sethook (or what it called) otherwise. Elsewhere: a suspect. */
  for (level = 0; !hook && aigc_frames_name_hooks() && level < 4 && lua_getstack(L, level, &ar); level++)
    hook = frame_is_hook(L, level, &ar);
  if (!hook && !aigc_hook_error(L, 1)) {
    if (aigc_frames_name_hooks() || !suspect_if_hooks_off(L, 1))
      return 0;
    lua_settop(L, 1);
    return 1;
  }
  lua_settop(L, 1);
  mark_interrupt(L, 1);
  return 1;
}

/*
** The message handler of aigc_pcall: adds a traceback, except to an error
** object (a table) and to an error raised inside a debug hook — an
** interrupt, which is marked and passed through untouched so that it can
** propagate as it would from any Lua code.
*/
static int traceback_handler (lua_State *L) {
  const char *msg;
  if (marked_if_hook(L))
    return 1;
  msg = lua_tostring(L, 1);
  if (msg == NULL && !lua_isnoneornil(L, 1))
    return 1;   /* a non-string error object (an aigc error table): keep it */
  if (msg == NULL)   /* error(nil): named as error_report.c and the Lua layer name it (not a bare traceback) */
    msg = "a nil error value without a message";
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/*
** Calls the function below `nargs` arguments on the stack under lua_pcall
** with a traceback handler. Returns the pcall status; on error the error
** (message with traceback) is left on the stack. An interrupt is not
** returned: it is raised again at once (see engine drive for who restores
** what on the way out).
*/
/* (kept: a closure per push on 5.1 and LuaJIT, see compat.h) */
static const char traceback_key = 't';

int aigc_pcall (lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;   /* the function's index */
  int status;
  aigc_push_kept_cfunction(L, traceback_handler, &traceback_key);
  lua_insert(L, base);
  status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  if (status != LUA_OK && aigc_is_interrupt(L, -1))
    lua_error(L);
  return status;
}

/*
** aigc.core.keep_interrupt: a message handler for xpcall that marks an
** error raised in a debug hook (a host's watchdog, lua.c's Ctrl-C:
** recognised as aigc_pcall recognises it) as an interrupt and changes
** nothing; aigc.core.is_interrupt(e) then tells it. The Lua layer's calls
** that drop or report an error raise those on (util.pcall_passing
** _interrupts). A message handler, not a pcall of C's own: xpcall can be
** yielded across (5.2+, LuaJIT), a C function's lua_pcall cannot, and a
** log object's or a cache's own functions may yield their task.
*/
int aigc_core_keep_interrupt (lua_State *L) {
  lua_settop(L, 1);
  (void)marked_if_hook(L);
  return 1;
}

/*
** aigc.core.pcall_passing(f, ...): pcall's results, an interrupt raised on
** (util.pcall_passing_interrupts on PUC 5.1, whose xpcall takes no
** arguments: compat's wrapper made a table and a closure before the call
** was protected). A C function: nothing is made before the call (the
** handler is kept), and 5.1 cannot yield across a pcall anyway.
*/
int aigc_core_pcall_passing (lua_State *L) {
  int status;
  luaL_checkany(L, 1);
  aigc_push_kept_cfunction(L, aigc_core_keep_interrupt, &keep_key);
  lua_insert(L, 1);
  status = lua_pcall(L, lua_gettop(L) - 2, LUA_MULTRET, 1);
  if (status != LUA_OK) {
    if (aigc_is_interrupt(L, -1))
      lua_error(L);
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_replace(L, 1);   /* (the handler's place) */
  return lua_gettop(L);
}

int aigc_core_is_interrupt (lua_State *L) {
  luaL_checkany(L, 1);
  lua_pushboolean(L, aigc_is_interrupt(L, 1));
  return 1;
}

/*
** aigc.core.thread_interrupt(co, e): whether `e`, the error the coroutine
** `co` died of (coroutine.resume's false, e), was raised in a debug hook
** (a host's watchdog cut the task): marked already, lua.c's
** "interrupted!", or (5.3+) a frame of co's stack called by the hook
** mechanism. Marked then: aigc_pcall and pcall_passing raise it on. No
** message handler runs in a coroutine that coroutine.resume stops, so
** nothing marked it there; 5.1, 5.2 and LuaJIT name no hook frame.
*/
int aigc_core_thread_interrupt (lua_State *L) {
  lua_State *co;
  lua_Debug ar;
  int level, yes;
  luaL_checktype(L, 1, LUA_TTHREAD);
  luaL_checkany(L, 2);
  co = lua_tothread(L, 1);
  yes = aigc_is_interrupt(L, 2) || aigc_hook_error(L, 2);
  for (level = 0; !yes && aigc_frames_name_hooks() && level < 6 && lua_getstack(co, level, &ar); level++)
    yes = frame_is_hook(co, level, &ar);
  if (yes)
    mark_interrupt(L, 2);
  lua_pushboolean(L, yes);
  return 1;
}

void aigc_push_pcall_handler (lua_State *L) {
  aigc_push_kept_cfunction(L, traceback_handler, &traceback_key);
}

int aigc_pcall_under (lua_State *L, int nargs, int nresults, int hidx) {
  int status = lua_pcall(L, nargs, nresults, hidx);
  if (status != LUA_OK && aigc_is_interrupt(L, -1))
    lua_error(L);
  return status;
}

void aigc_push_box_mt (lua_State *L, const char *name, lua_CFunction gc) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, name) == LUA_TTABLE)
    return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, name);
}

/* }====================================================== */

/* A file function's failure: nil, "PATH: strerror(e)", e (util.h). */
int aigc_fail_errno (lua_State *L, const char *path, int e) {
  char eb[AIGC_ERRBUF];
  luaL_pushfail(L);
  lua_pushfstring(L, "%s: %s", path, aigc_strerror(e, eb, sizeof eb));
  lua_pushinteger(L, e);
  return 3;
}
