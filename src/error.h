/*
** error.h — error objects (the "aigc.error" metatable), the redaction of
** secrets from them and from log lines, and where the errors of callbacks
** and the client's log lines go (the client's error_handler, step()'s list,
** stderr; its log function).
**
** The secrets blocks the functions below take are redact.h's.
*/
#ifndef AIGC_ERROR_H
#define AIGC_ERROR_H

#include <stddef.h>

#include "redact.h"
#include "util.h"

void aigc_error_open (lua_State *L);
/* Pushes a new error object {kind=, message=} with the error metatable. */
void aigc_error_new (lua_State *L, const char *kind, const char *message);
/* Sets err[field] = v on the error on top. */
void aigc_error_setint (lua_State *L, const char *field, lua_Integer v);
/* Pushes a "limit" error: "<what> holds <detail> (the limit is max_json_...)". */
void aigc_error_json_limit (lua_State *L, const char *what, const char *detail);

/* Replaces the string on top by its form with controls escaped (CR, LF,
   ESC... as Lua writes them), if it has any. */
void aigc_error_escape_top (lua_State *L);
/* Scrubs the value at idx: a string is replaced by its scrubbed form, a
   table is scrubbed in place (every string value and key, any depth); an
   error object's message gets its control characters escaped. */
void aigc_error_scrub (lua_State *L, int idx, const char *secrets);

/*
** An error raised by Lua code the engine ran, where it cannot fail a
** request (on_done/on_error, a waiter, a spawned task, the log function,
** the watch callbacks), the engine userdata at eidx: scrubbed, then given
** to the client's error_handler if it has one (if the handler itself
** raises, both errors go to stderr), else kept in the engine's list for
** the next step() (beyond AIGC_MAX_KEPT_ERRORS kept, stderr instead).
*/
void aigc_error_report (lua_State *L, int eidx, int erridx, const char *secrets);
/*
** Replaces the error a callback raised (on top, with its traceback appended
** by aigc_pcall's handler) by an error object of kind "callback": message =
** what the callback raised, traceback = where; a value not a string (no
** traceback then) is kept as err.value, its text (error_report.c) the
** message.
*/
void aigc_error_from_callback (lua_State *L);
/* Writes what no step() collected to stderr (the client closes). */
void aigc_error_flush (lua_State *L, int eidx, const char *secrets);
/* Calls the client's log function, if any, with (level, the line scrubbed). */
void aigc_error_log (lua_State *L, int eidx, const char *secrets, const char *level,
                     const char *fmt, ...) AIGC_PRINTF(5, 6);

#endif
