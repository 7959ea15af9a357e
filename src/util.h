/*
** util.h — what every Lua-facing file of aigc.core uses: the clock, the
** protected call of Lua callbacks, interrupts (Ctrl-C), the caller's
** position and the one format of misuse, the readers of optional fields,
** and the list of per-call options.
*/
#ifndef AIGC_UTIL_H
#define AIGC_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "aigc.h"

/* Monotonic seconds. */
double aigc_now (void);


/* {======================================================
** Misuse: "bad argument #N to 'FN' (what.field: ...)" at the caller
** ======================================================= */

/*
** Raises "bad argument #arg to 'fname' (<message>)", located at the
** caller outside aigc's own code ("file:line: " of the first stack level
** whose source is not under an aigc/ folder): the one format of misuse. The message's formats are lua_pushfstring's (%s %d %f %p %c).
*/
int aigc_argerror (lua_State *L, int arg, const char *fname, const char *fmt, ...)
  AIGC_PRINTF(4, 5);

/* Pushes nil, "PATH: strerror(e)", e -- a file function's failure
   (strerror_r's text: syserr.h) -- and returns 3. */
int aigc_fail_errno (lua_State *L, const char *path, int e);

/* Raises "<where>msg", located as aigc_argerror's are. */
int aigc_error_at_caller (lua_State *L, const char *msg);

/* Who is being called, for the messages of the option readers: argument
   `arg` of function `fname`, a table called `what` ("params", "config"). */
typedef struct aigc_argctx {
  const char *fname;
  int arg;
  const char *what;
} aigc_argctx;

/*
** Optional fields of the table at t; an absent (nil) field gives `def`.
** A wrong one raises with aigc_argerror ("params.timeout: a number of
** seconds > 0 expected, got -1"). A string that looks like a number is
** refused, as it is in the Lua layer.
*/
double aigc_opt_seconds (lua_State *L, int t, const aigc_argctx *cx, const char *field,
                         double def);
/* `deadline`: seconds > 0, or false (0: none, turning a default off). */
double aigc_opt_deadline (lua_State *L, int t, const aigc_argctx *cx, double def);
int64_t aigc_opt_integer (lua_State *L, int t, const aigc_argctx *cx, const char *field,
                          int64_t def, int64_t lo, int64_t hi);
/* A malloc'ed copy of a string field (no NUL inside), or NULL when absent. */
char *aigc_opt_strdup (lua_State *L, int t, const aigc_argctx *cx, const char *field);

/* }====================================================== */


/* {======================================================
** Per-call options: never sent
** ======================================================= */

/* Each with who reads it: "engine", "client" or "dialogue". */
typedef struct aigc_call_option {
  const char *name;
  size_t len;                   /* strlen(name) */
  const char *reader;
} aigc_call_option;
/* NULL-terminated; core.call_options is made from it. */
extern const aigc_call_option aigc_call_options[];
/* Whether k[0..len) is a per-call option. */
int aigc_is_call_option (const char *k, size_t len);

/* }====================================================== */


/* {======================================================
** Calling Lua, and interrupts
** ======================================================= */

/*
** Calls the function below `nargs` arguments on the stack under lua_pcall
** with a traceback handler. Returns the pcall status; on error the error
** (message with traceback) is left on the stack. An interrupt is not
** returned: it is raised again at once (the callers restore their state
** on the way out: see aigc_engine_drive).
*/
int aigc_pcall (lua_State *L, int nargs, int nresults);

/* aigc.core.keep_interrupt, aigc.core.is_interrupt (util.c): an xpcall
   handler marking an error raised in a debug hook, and its test. */
int aigc_core_keep_interrupt (lua_State *L);
int aigc_core_is_interrupt (lua_State *L);
int aigc_core_thread_interrupt (lua_State *L);   /* (a task's death: task.lua) */
int aigc_core_pcall_passing (lua_State *L);   /* (PUC 5.1's util.pcall_passing_interrupts) */

/*
** The same call with aigc_pcall's message handler already on the stack at
** hidx (pushed by aigc_push_pcall_handler below the function): a caller
** that calls once per stream chunk saves moving it in and out. The handler
** stays where it is.
*/
void aigc_push_pcall_handler (lua_State *L);
int aigc_pcall_under (lua_State *L, int nargs, int nresults, int hidx);

/*
** Interrupts: the standalone interpreter's Ctrl-C installs a debug hook
** from its signal handler (so do hosts that stop runaway scripts). A wait
** compares the hooks with those it started with, and gives a newly
** installed one its chance to run (the probe).
*/
typedef struct aigc_hooks {   /* the debug hooks a wait started with */
  lua_Hook hook, main_hook;
  int mask, count, main_mask;
} aigc_hooks;
void aigc_hooks_snap (lua_State *L, aigc_hooks *h);
int  aigc_hooks_changed (lua_State *L, const aigc_hooks *h);
/*
** Gives a newly installed hook its chance to run: returns LUA_OK (the hook
** did not raise; *h is updated) or the error status with the error on the
** stack, marked as an interrupt.
*/
int  aigc_interrupt_probe (lua_State *L, aigc_hooks *h);
/* Whether the value at idx is the error of an interrupt (raised in a hook). */
int  aigc_is_interrupt (lua_State *L, int idx);
void aigc_interrupt_forget (lua_State *L);   /* at an outermost call */
void aigc_interrupt_open (lua_State *L);     /* once, at luaopen */
/* Whether we run inside a __gc finalizer (as far as this Lua can tell:
   compat.h, aigc_frame_is_finalizer). */
int  aigc_in_finalizer (lua_State *L);
/* Whether a wait here may yield to the task it runs in: the language
   allows it, and no finalizer or debug hook runs (util.c). */
int  aigc_may_yield (lua_State *L);

/*
** Pushes the text of the value at idx, as luaL_tolstring does, but a
** value whose own __tostring raises or returns no string (a callback's
** error object, say) gives "(a TYPE value whose __tostring failed)"
** instead of raising: an error being reported must not become another
** one. A memory error and a debug hook's (an interrupt's) are raised.
*/
const char *aigc_tostring_safe (lua_State *L, int idx, size_t *len);

/*
** Pushes the registry's metatable `name` for userdata boxes that `gc`
** frees (a C buffer boxed so that an error cannot leak it), making it on
** first use. It is registered only once filled: made as luaL_newmetatable
** does and then filled, a memory error between the two left a metatable
** without __gc in the registry, and every later box of that name leaked.
*/
void aigc_push_box_mt (lua_State *L, const char *name, lua_CFunction gc);

/* }====================================================== */

#endif
