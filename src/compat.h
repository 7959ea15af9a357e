/*
** compat.h — the one place where the Lua versions differ.
**
** aigc.core builds against Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT 2.1 (whose C
** API is 5.1's). Every C file includes this header instead of lua.h and
** lauxlib.h, and writes to the Lua 5.4 API; what older versions lack comes
** from two places:
**
**   - Debian's lua-compat53 (compat-5.3.h, included for LUA_VERSION_NUM <
**     503 with its default settings: its functions are static, nothing to
**     link, no -D needed): lua_absindex, lua_rawgetp/rawsetp, lua_rawlen,
**     luaL_setfuncs, luaL_newlib, luaL_setmetatable, luaL_tolstring,
**     luaL_traceback, luaL_len, lua_geti, lua_tointegerx, lua_getfield and
**     lua_rawget(i) returning the type, luaL_Buffer's 5.3 API...
**   - this header, for what compat-5.3 does not cover, each shim below
**     with why:
**       user values      lua_newuserdatauv, lua_getiuservalue,
**                        lua_setiuservalue (several per userdata in 5.4;
**                        elsewhere one table of them)
**       to-be-closed     nothing to do: `__close` only exists on 5.4; the
**                        metatables keep it, older Luas ignore it, and the
**                        methods it calls (cancel, close) stay
**       integers         aigc_push_int64, aigc_number_of (5.3+: 64-bit
**                        integers; 5.1, 5.2, LuaJIT: every number is a
**                        double, exact up to 2^53)
**       yield            aigc_isyieldable, aigc_hooks_tell_finalizers
**       threads          aigc_main_thread (no LUA_RIDX_MAINTHREAD in 5.1)
**       C functions      aigc_push_kept_cfunction (a closure per push
**                        before 5.2: made once, kept),
**                        aigc_set_kept_metatable (a name looked up)
**       debug info       aigc_nparams (no "u" of nparams in 5.1/LuaJIT),
**                        aigc_frame_is_finalizer, aigc_frame_is_hook,
**                        aigc_frames_name_hooks,
**                        aigc_hook_names_unsure (5.3: see there),
**                        aigc_gc_refused: how a finalizer and a debug hook
**                        show on the stack, where they show at all
**       misc             luaL_pushfail; lua_pushfstring has only %s %d %f
**                        %p %c %% before 5.3 (aigc uses no other); warn:
**                        aigc writes its reports to stderr itself (no
**                        lua_warning), so nothing to shim
** No `#if` on LUA_VERSION_NUM outside this header.
*/
#ifndef AIGC_COMPAT_H
#define AIGC_COMPAT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#if LUA_VERSION_NUM < 503
/* Its source is compiled into each file that includes it (static
   functions); it is not written for aigc's warning set. */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#endif
#include "compat-5.3.h"
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#endif

#if defined(__GNUC__)
#define AIGC_COMPAT_FN __attribute__((__unused__)) static
#else
#define AIGC_COMPAT_FN static
#endif


/*
** {======================================================
** User values
**
** Lua 5.4 gives a userdata any number of user values; 5.2 and 5.3 one
** (lua_setuservalue), 5.1 and LuaJIT one environment table. Below 5.4 a
** userdata made with user values gets one table of them, sized at once:
** setting a slot later is a rawseti into its array part, which allocates
** nothing (the re-entrancy rule counts on that: cancel() sets slots).
** =======================================================
*/

#if LUA_VERSION_NUM < 504

AIGC_COMPAT_FN void *aigc_newuserdatauv (lua_State *L, size_t size, int nuv) {
  void *p = lua_newuserdata(L, size);
  if (nuv > 0) {
    lua_createtable(L, nuv, 0);
    lua_setuservalue(L, -2);
  }
  return p;
}

/* (Below 5.4 a userdata's user values are one table. compat-5.3 makes
   lua_getuservalue and lua_rawgeti give the type, as 5.3's do: each type
   is read once; idx is read before anything is pushed, so a relative index
   needs no lua_absindex. A request reads 15 and sets 9.) */
#if LUA_VERSION_NUM < 502
/* 5.1 and LuaJIT: the table is the userdata's environment, which they
   always give as a table (lua_getfenv), so its type is not asked (as in
   5.4, idx must be a full userdata), and the functions are called, not
   compat-5.3's macros that ask lua_type after each: LuaJIT spent ~188
   instructions a read, ~160 a store. */
AIGC_COMPAT_FN int aigc_getiuservalue (lua_State *L, int idx, int n) {
  lua_getfenv(L, idx);
  (lua_rawgeti)(L, -1, n);
  lua_replace(L, -2);
  return lua_type(L, -1);
}

AIGC_COMPAT_FN int aigc_setiuservalue (lua_State *L, int idx, int n) {
  lua_getfenv(L, idx);
  lua_pushvalue(L, -2);
  (lua_rawseti)(L, -2, n);
  lua_pop(L, 2);
  return 1;
}
#else
/* 5.2 and 5.3: a user value, nil until set (a userdata made with none). */
AIGC_COMPAT_FN int aigc_getiuservalue (lua_State *L, int idx, int n) {
  int t;
  if (lua_getuservalue(L, idx) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_pushnil(L);
    return LUA_TNONE;
  }
  t = lua_rawgeti(L, -1, n);
  lua_replace(L, -2);
  return t;
}

AIGC_COMPAT_FN int aigc_setiuservalue (lua_State *L, int idx, int n) {
  if (lua_getuservalue(L, idx) != LUA_TTABLE) {
    lua_pop(L, 2);
    return 0;
  }
  lua_insert(L, -2);
  lua_rawseti(L, -2, n);
  lua_pop(L, 1);
  return 1;
}
#endif

#define lua_newuserdatauv aigc_newuserdatauv
#define lua_getiuservalue aigc_getiuservalue
#define lua_setiuservalue aigc_setiuservalue

#endif

/* }====================================================== */


/*
** {======================================================
** Numbers
**
** Lua 5.3 and 5.4 have 64-bit integers: a JSON integer stays exact. On
** 5.1, 5.2 and LuaJIT every number is a double, exact for integers of
** magnitude up to 2^53 only (lua_Integer is ptrdiff_t there, but
** lua_pushinteger stores a double). So:
**   - a reply's integer beyond +-2^53 becomes the nearest double (json.h
**     and the README say so);
**   - a Lua number that is integer-valued and within +-2^53 is written as
**     an integer ("128", not "128.0"); one beyond +-2^53 is refused with
**     the path (AIGC_NUM_BIGINT): it may already be a rounded value, and
**     sending it would be a silent rounding.
** =======================================================
*/

#if LUA_VERSION_NUM >= 503
#define AIGC_EXACT_INTEGERS 1
#else
#define AIGC_EXACT_INTEGERS 0
#endif

#define AIGC_MAX_EXACT_DOUBLE 9007199254740992.0   /* 2^53 */

AIGC_COMPAT_FN void aigc_push_int64 (lua_State *L, int64_t v) {
#if LUA_VERSION_NUM >= 503
  lua_pushinteger(L, (lua_Integer)v);
#else
  lua_pushnumber(L, (lua_Number)v);
#endif
}

enum {
  AIGC_NUM_INT,      /* an exact integer: *i */
  AIGC_NUM_FLOAT,    /* a float: *d */
  AIGC_NUM_BIGINT    /* doubles only: integer-valued beyond 2^53: *d */
};

/* Classifies the number at idx (which must be a number). */
AIGC_COMPAT_FN int aigc_number_of (lua_State *L, int idx, int64_t *i, double *d) {
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, idx)) {
    *i = (int64_t)lua_tointeger(L, idx);
    return AIGC_NUM_INT;
  }
  *d = (double)lua_tonumber(L, idx);
  return AIGC_NUM_FLOAT;
#else
  double v = (double)lua_tonumber(L, idx);
  *d = v;
  /* a fraction, NaN or an infinity (inf == floor(inf): tested apart) */
  if (!(v == floor(v)) || isinf(v))
    return AIGC_NUM_FLOAT;
  if (fabs(v) > AIGC_MAX_EXACT_DOUBLE)
    return AIGC_NUM_BIGINT;
  *i = (int64_t)v;
  return AIGC_NUM_INT;
#endif
}

/* }====================================================== */


/*
** {======================================================
** Threads, yields, debug information
** =======================================================
*/

/*
** Whether the language lets the running thread yield here. 5.3, 5.4 and
** LuaJIT 2.1 know (lua_isyieldable: not across a C call, so not in a
** finalizer the collector runs on a coroutine); 5.1 and 5.2 say only
** whether it is a coroutine at all (lua_yield itself then raises across a
** C call boundary). Not enough for a wait to yield: see aigc_may_yield
** (util.h) and aigc_hooks_tell_finalizers.
*/
AIGC_COMPAT_FN int aigc_isyieldable (lua_State *L) {
#if LUA_VERSION_NUM >= 503 || defined(LUA_LJDIR)
  return lua_isyieldable(L);
#else
  int main = lua_pushthread(L);
  lua_pop(L, 1);
  return !main;
#endif
}

/*
** Whether a finalizer always shows where a wait can see it: on 5.3 and 5.4
** as a "__gc" frame, or lua_isyieldable is false (the collector calls it
** as a C function). 5.1, 5.2 and LuaJIT name no finalizer frame, and
** LuaJIT's lua_isyieldable is true in a coroutine that a finalizer
** resumed (a yield there comes back as a hook's, with no values); what
** they all do is turn debug hooks off while a finalizer runs (5.1, 5.2: on
** its thread; LuaJIT: everywhere), so aigc_may_yield probes the hooks.
*/
AIGC_COMPAT_FN int aigc_hooks_tell_finalizers (void) {
  return LUA_VERSION_NUM < 503;
}

/*
** Whether lua_close finalizes the objects its finalizers make: LuaJIT's
** does, in rounds (a userdata made by a finalizer gets its __gc in the
** next one); 5.1-5.4 register no finalizer once lua_close has begun (home.h).
*/
AIGC_COMPAT_FN int aigc_close_finalizes_late_objects (void) {
#if defined(LUA_LJDIR)
  return 1;
#else
  return 0;
#endif
}

/*
** Whether this Lua hashes a long string from a sample of its bytes (5.1 to
** 5.3; 5.4 and LuaJIT hash it whole, seeded): JSON objects whose keys
** collide in that hash are then refused (a hash flood: json.c).
*/
AIGC_COMPAT_FN int aigc_lua_samples_long_strings (void) {
#if LUA_VERSION_NUM < 504 && !defined(LUA_LJDIR)
  return 1;
#else
  return 0;
#endif
}

/*
** A C function pushed on every request (the pcall's message handler, the
** step's driver, the lazy headers' metamethods). 5.2+: a light C function,
** no allocation. 5.1 and LuaJIT: each lua_pushcfunction made a closure (an
** allocation and the collector's work, ~130 instructions on LuaJIT, 5 a
** request); it is made once per Lua state and kept in the registry under
** `key`, the address of a static byte of the caller's. It raises (memory)
** only the first time, where lua_pushcfunction always could.
*/
#if LUA_VERSION_NUM < 502
AIGC_COMPAT_FN void aigc_push_kept_cfunction (lua_State *L, lua_CFunction f,
                                              const char *key) {
  lua_pushlightuserdata(L, (void *)(uintptr_t)key);
  (lua_rawget)(L, LUA_REGISTRYINDEX);
  if (lua_tocfunction(L, -1) == f)
    return;
  lua_pop(L, 1);
  lua_pushcfunction(L, f);
  lua_pushlightuserdata(L, (void *)(uintptr_t)key);
  lua_pushvalue(L, -2);
  (lua_rawset)(L, LUA_REGISTRYINDEX);
}
#else
#define aigc_push_kept_cfunction(L, f, key) ((void)(key), lua_pushcfunction((L), (f)))
#endif

/*
** luaL_setmetatable for the userdata every request makes. 5.1 and LuaJIT:
** compat-5.3's looks the name up in the registry with lua_getfield, and
** LuaJIT hashes and finds the C string each time (~230 instructions); the
** metatable is also kept under `key` (a static byte's address) at its
** first use, and found there by a light key. It raises (memory) only that
** first time, where the lookup by name always could.
*/
#if LUA_VERSION_NUM < 502
AIGC_COMPAT_FN void aigc_set_kept_metatable (lua_State *L, const char *name,
                                             const char *key) {
  lua_pushlightuserdata(L, (void *)(uintptr_t)key);
  (lua_rawget)(L, LUA_REGISTRYINDEX);
  if (lua_type(L, -1) != LUA_TTABLE) {
    lua_pop(L, 1);
    luaL_getmetatable(L, name);
    lua_pushlightuserdata(L, (void *)(uintptr_t)key);
    lua_pushvalue(L, -2);
    (lua_rawset)(L, LUA_REGISTRYINDEX);
  }
  lua_setmetatable(L, -2);
}
#else
#define aigc_set_kept_metatable(L, name, key) ((void)(key), luaL_setmetatable((L), (name)))
#endif

#if LUA_VERSION_NUM < 502
/* 5.1 and LuaJIT keep no main thread in the registry: aigc notes it when
   it is opened on it (aigc_note_main_thread), the usual case. */
static const char aigc_main_thread_key = 'm';
#endif

/* At luaopen: remembers the main thread where the registry lacks it. */
AIGC_COMPAT_FN void aigc_note_main_thread (lua_State *L) {
#if LUA_VERSION_NUM < 502
  if (lua_pushthread(L))
    lua_rawsetp(L, LUA_REGISTRYINDEX, &aigc_main_thread_key);
  else
    lua_pop(L, 1);
#else
  (void)L;
#endif
}

/* The main thread, or NULL when it is not known (5.1: aigc was first
   opened in a coroutine). */
AIGC_COMPAT_FN lua_State *aigc_main_thread (lua_State *L) {
  lua_State *main;
#if LUA_VERSION_NUM >= 502
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
#else
  lua_rawgetp(L, LUA_REGISTRYINDEX, &aigc_main_thread_key);
#endif
  main = lua_tothread(L, -1);
  lua_pop(L, 1);
  return main;
}

/*
** The number of fixed parameters of the Lua function at idx and whether
** it is vararg; 0 when the version cannot tell. 5.2+: lua_getinfo "u".
** LuaJIT: its C lua_Debug has no such fields, but its debug.getinfo(f, "u")
** returns them (so a one-parameter stream callback gets the fast path
** there too); called only while it is the library's C function (not a
** replacement), unprotected: it fails only on memory, as any allocation
** here may. PUC 5.1: nparams is nil, 0 is returned.
*/
AIGC_COMPAT_FN int aigc_nparams (lua_State *L, int idx, int *nparams, int *isvararg) {
#if LUA_VERSION_NUM >= 502
  lua_Debug ar;
  lua_pushvalue(L, idx);
  if (!lua_getinfo(L, ">u", &ar))
    return 0;
  *nparams = ar.nparams;
  *isvararg = ar.isvararg;
  return 1;
#else
  int top = lua_gettop(L), ok = 0;
  idx = idx < 0 ? top + idx + 1 : idx;
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "debug");
    if (lua_istable(L, -1)) {
      lua_getfield(L, -1, "getinfo");
      if (lua_iscfunction(L, -1)) {
        lua_pushvalue(L, idx);
        lua_pushliteral(L, "u");
        lua_call(L, 2, 1);
        if (lua_istable(L, -1)) {
          lua_getfield(L, -1, "nparams");
          lua_getfield(L, -2, "isvararg");
          if (lua_type(L, -2) == LUA_TNUMBER) {
            *nparams = (int)lua_tointeger(L, -2);
            *isvararg = lua_toboolean(L, -1);
            ok = 1;
          }
        }
      }
    }
  }
  lua_settop(L, top);
  return ok;
#endif
}

/*
** Whether the frame ar (filled with "n") is a __gc metamethod. 5.3 and
** 5.4 name it (spec/lifecycle_contract_spec.lua checks both); elsewhere a
** finalizer cannot be told from any other call, and this is 0 (docs/ARCHITECTURE.md: close() in a finalizer).
*/
AIGC_COMPAT_FN int aigc_frame_is_finalizer (const lua_Debug *ar) {
  return ar->namewhat != NULL && ar->name != NULL
         && strcmp(ar->namewhat, "metamethod") == 0 && strcmp(ar->name, "__gc") == 0;
}

/* Whether the frame ar (filled with "n") was called by the hook mechanism
   (5.3+ name it "hook"; 5.1, 5.2 and LuaJIT do not: see aigc_hook_error). */
AIGC_COMPAT_FN int aigc_frame_is_hook (const lua_Debug *ar) {
  return ar->namewhat != NULL && strcmp(ar->namewhat, "hook") == 0;
}

/* Whether aigc_frame_is_hook can tell (5.3+). Elsewhere an error raised in
   a hook is told by the hooks being off where it was raised and on where
   it was caught (util.c, "suspects"). */
AIGC_COMPAT_FN int aigc_frames_name_hooks (void) {
  return LUA_VERSION_NUM >= 503;
}

/* Whether a frame the hook mechanism called may still go unnamed (5.3
   only): with a call hook set, 5.3's ldo.c callhook takes the Lua hook
   function's own call, made at a tail call instruction, for a tail call
   (CIST_TAIL), and getfuncname then names nothing; nor does it name a hook
   called at a C function's call (its caller is not Lua). 5.4 names both
   "hook". util.c then tells the frame by the debug library's hook table
   found just below its function (below_is_hook_table). */
AIGC_COMPAT_FN int aigc_hook_names_unsure (void) {
  return LUA_VERSION_NUM == 503;
}

/*
** An error raised in a debug hook, recognised by the message the standalone
** interpreters' Ctrl-C handler raises: "interrupted!" (the handler removes
** itself first, so no hook is left to look at). lua.c's is that, with the
** position of the Lua code it stopped when there is one; luajit.c's too
** ("file:12: interrupted!"). Where frames cannot tell (5.1, 5.2, LuaJIT) it
** backs up the hooks' probes (util.c, suspects); on 5.3 and 5.4 the "hook" frame, which a
** hook that fires at a call or return event does not always leave within
** the handler's reach (a 5.3 run saw Ctrl-C in a stream callback returned
** as a callback error).
*/
AIGC_COMPAT_FN int aigc_hook_error (lua_State *L, int idx) {
  static const char tail[] = ": interrupted!";
  size_t len, tlen = sizeof tail - 1;
  const char *msg = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &len) : NULL;
  if (msg == NULL)
    return 0;
  return strcmp(msg, "interrupted!") == 0
         || (len > tlen && memcmp(msg + len - tlen, tail, tlen) == 0);
}

/* Whether the collector refuses to be asked (Lua 5.4.4+ inside a
   finalizer: lua_gc returns -1). */
AIGC_COMPAT_FN int aigc_gc_refused (lua_State *L) {
#if LUA_VERSION_NUM >= 504
  return lua_gc(L, LUA_GCISRUNNING) == -1;
#else
  (void)L;
  return 0;
#endif
}

#if LUA_VERSION_NUM < 504
#define luaL_pushfail(L) lua_pushnil(L)
#endif

/* }====================================================== */

#endif
